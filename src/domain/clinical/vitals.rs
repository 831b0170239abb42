//! Vital signs as a clinician records them. Each field names its unit, and each has a range
//! outside which a value is a typing error rather than a patient (a temperature of 400 °C is
//! refused, named). BMI is computed from weight and height, never entered.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::validate::Checks;

/// Vital signs taken at a visit; every field optional.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Vitals {
    /// Systolic blood pressure, mmHg (50 to 300).
    #[schema(minimum = 50, maximum = 300)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systolic_mmhg: Option<f64>,
    /// Diastolic blood pressure, mmHg (20 to 200, below the systolic).
    #[schema(minimum = 20, maximum = 200)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diastolic_mmhg: Option<f64>,
    /// Heart rate, beats per minute (20 to 300).
    #[schema(minimum = 20, maximum = 300)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heart_rate_bpm: Option<f64>,
    /// Body temperature, °C (25 to 45).
    #[schema(minimum = 25, maximum = 45)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<f64>,
    /// Oxygen saturation, % (50 to 100).
    #[schema(minimum = 50, maximum = 100)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spo2_percent: Option<f64>,
    /// Breaths per minute (4 to 80).
    #[schema(minimum = 4, maximum = 80)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respiratory_rate_per_min: Option<f64>,
    /// Weight, kg (0.3 to 500).
    #[schema(minimum = 0.3, maximum = 500)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_kg: Option<f64>,
    /// Height, cm (20 to 272).
    #[schema(minimum = 20, maximum = 272)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height_cm: Option<f64>,
}

/// What a value is, its unit and the range a real patient's value lies in.
struct Sign {
    field: &'static str,
    unit: &'static str,
    min: f64,
    max: f64,
}

const SIGNS: [Sign; 8] = [
    Sign {
        field: "systolic_mmhg",
        unit: "mmHg",
        min: 50.0,
        max: 300.0,
    },
    Sign {
        field: "diastolic_mmhg",
        unit: "mmHg",
        min: 20.0,
        max: 200.0,
    },
    Sign {
        field: "heart_rate_bpm",
        unit: "beats/min",
        min: 20.0,
        max: 300.0,
    },
    Sign {
        field: "temperature_c",
        unit: "°C",
        min: 25.0,
        max: 45.0,
    },
    Sign {
        field: "spo2_percent",
        unit: "%",
        min: 50.0,
        max: 100.0,
    },
    Sign {
        field: "respiratory_rate_per_min",
        unit: "breaths/min",
        min: 4.0,
        max: 80.0,
    },
    Sign {
        field: "weight_kg",
        unit: "kg",
        min: 0.3,
        max: 500.0,
    },
    Sign {
        field: "height_cm",
        unit: "cm",
        min: 20.0,
        max: 272.0,
    },
];

impl Vitals {
    fn values(&self) -> [Option<f64>; 8] {
        [
            self.systolic_mmhg,
            self.diastolic_mmhg,
            self.heart_rate_bpm,
            self.temperature_c,
            self.spo2_percent,
            self.respiratory_rate_per_min,
            self.weight_kg,
            self.height_cm,
        ]
    }

    /// Each value within its range (named with its unit), the diastolic below the systolic.
    pub fn check(&self, checks: &mut Checks, prefix: &str) {
        for (sign, value) in SIGNS.iter().zip(self.values()) {
            if let Some(v) = value
                && !(v.is_finite() && (sign.min..=sign.max).contains(&v))
            {
                checks.fail(
                    &format!("{prefix}{}", sign.field),
                    format!(
                        "must be between {} and {} {}",
                        sign.min, sign.max, sign.unit
                    ),
                );
            }
        }
        if let (Some(s), Some(d)) = (self.systolic_mmhg, self.diastolic_mmhg)
            && d >= s
        {
            checks.fail(
                &format!("{prefix}diastolic_mmhg"),
                "must be below the systolic pressure",
            );
        }
    }

    /// Body-mass index (kg/m²) to one decimal, when weight and height are both known.
    pub fn bmi(&self) -> Option<f64> {
        let (w, h) = (self.weight_kg?, self.height_cm? / 100.0);
        (h > 0.0).then(|| (w / (h * h) * 10.0).round() / 10.0)
    }
}

/// Vital signs as stored, with the BMI computed from them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct Measured {
    #[serde(flatten)]
    pub vitals: Vitals,
    /// kg/m², computed from weight and height.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bmi: Option<f64>,
}

impl From<Vitals> for Measured {
    fn from(vitals: Vitals) -> Self {
        Self {
            bmi: vitals.bmi(),
            vitals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temperature_of_400_is_refused_with_its_unit_and_bmi_is_computed() {
        let v = Vitals {
            temperature_c: Some(400.0),
            systolic_mmhg: Some(80.0),
            diastolic_mmhg: Some(90.0),
            weight_kg: Some(70.0),
            height_cm: Some(175.0),
            ..Vitals::default()
        };
        let mut checks = Checks::new();
        v.check(&mut checks, "vitals.");
        let err = checks.finish().unwrap_err();
        let text = format!("{err:?}");
        assert!(text.contains("vitals.temperature_c"), "{text}");
        assert!(text.contains("°C"), "{text}");
        assert!(text.contains("below the systolic"), "{text}");
        assert_eq!(v.bmi(), Some(22.9));
        let fine = Vitals {
            temperature_c: Some(37.2),
            heart_rate_bpm: Some(72.0),
            ..Vitals::default()
        };
        let mut checks = Checks::new();
        fine.check(&mut checks, "");
        assert!(checks.finish().is_ok());
        assert_eq!(fine.bmi(), None);
    }
}
