//! The specialties catalogue: seeded from `specialties.json`, searched by name, synonym
//! and the everyday words patients use for their symptoms.

use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::on_db;

const CATALOGUE: &str = include_str!("specialties.json");

#[derive(Deserialize)]
struct Seed {
    slug: String,
    name: String,
    description: String,
    synonyms: Vec<String>,
    symptoms: Vec<String>,
}

#[derive(Clone, Debug, Serialize, ToSchema, sqlx::FromRow)]
pub struct Specialty {
    pub id: Uuid,
    pub slug: String,
    pub name: String,
    pub description: String,
    #[serde(skip)]
    pub synonyms: String,
    #[serde(skip)]
    pub symptoms: String,
}

/// A search hit: the specialty and why it matched.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SpecialtyMatch {
    #[serde(flatten)]
    pub specialty: Specialty,
    pub score: f32,
    /// The catalogue words found in the query.
    pub matched: Vec<String>,
}

/// The catalogue's slugs as the API description's enum, for fields that list
/// specialties: the catalogue is bundled, so the set is fixed per release.
pub fn slug_list_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    #[derive(Deserialize)]
    struct SlugOnly {
        slug: String,
    }
    let slugs: Vec<String> = serde_json::from_str::<Vec<SlugOnly>>(CATALOGUE)
        .map(|all| all.into_iter().map(|s| s.slug).collect())
        .unwrap_or_default();
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(slugs)),
        )
        .build()
}

/// Inserts or refreshes the catalogue (run at start-up, after migrations).
pub async fn seed(db: &Db) -> Result<usize> {
    let seeds: Vec<Seed> = serde_json::from_str(CATALOGUE)
        .map_err(|e| Error::internal(format!("specialties.json: {e}")))?;
    let now = Utc::now();
    const SQL: &str = "INSERT INTO specialties (id, slug, name, description, synonyms, symptoms, created_at, updated_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (slug) DO UPDATE SET name = excluded.name, \
        description = excluded.description, synonyms = excluded.synonyms, symptoms = excluded.symptoms, updated_at = excluded.updated_at \
        WHERE specialties.name <> excluded.name OR specialties.description <> excluded.description \
        OR specialties.synonyms <> excluded.synonyms OR specialties.symptoms <> excluded.symptoms";
    let mut tx = db.begin().await?;
    for s in &seeds {
        let synonyms = s.synonyms.join("\n").to_lowercase();
        let symptoms = s.symptoms.join("\n").to_lowercase();
        crate::exec_tx!(
            &mut tx,
            SQL,
            Uuid::now_v7(),
            &s.slug,
            &s.name,
            &s.description,
            &synonyms,
            &symptoms,
            now
        )?;
    }
    tx.commit().await?;
    db.forget("specialties");
    Ok(seeds.len())
}

pub async fn all(db: &Db) -> Result<Vec<Specialty>> {
    Ok(catalogue(db).await?.as_ref().clone())
}

/// The catalogue is bundled and seeded at start-up: read once per process.
async fn catalogue(db: &Db) -> Result<std::sync::Arc<Vec<Specialty>>> {
    const SQL: &str =
        "SELECT id, slug, name, description, synonyms, symptoms FROM specialties ORDER BY name";
    Ok(db
        .fixed("specialties", async {
            on_db!(db, |pool| sqlx::query_as::<_, Specialty>(SQL)
                .fetch_all(pool)
                .await)
        })
        .await?)
}

pub async fn by_slug(db: &Db, slug: &str) -> Result<Option<Specialty>> {
    const SQL: &str =
        "SELECT id, slug, name, description, synonyms, symptoms FROM specialties WHERE slug = $1";
    Ok(on_db!(db, |pool| sqlx::query_as::<_, Specialty>(SQL)
        .bind(slug)
        .fetch_optional(pool)
        .await)?)
}

/// Ranks specialties for a free-text query; an empty query lists them all.
pub async fn search(db: &Db, query: &str) -> Result<Vec<SpecialtyMatch>> {
    let all = catalogue(db).await?;
    let query = query.trim().to_lowercase();
    if query.is_empty() {
        return Ok(all
            .iter()
            .map(|specialty| SpecialtyMatch {
                specialty: specialty.clone(),
                score: 0.0,
                matched: Vec::new(),
            })
            .collect());
    }
    let words: Vec<&str> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 4)
        .collect();
    let mut hits: Vec<SpecialtyMatch> = all
        .iter()
        .filter_map(|s| score(s, &query, &words))
        .collect();
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.specialty.name.cmp(&b.specialty.name))
    });
    Ok(hits)
}

/// Whole phrases found in the query weigh most (name 5, synonym 4, symptom 3); single
/// shared words of four letters or more count 1 (prefix match, so "itch" meets "itchy").
/// `words`: the query's words of four letters or more.
fn score(s: &Specialty, query: &str, words: &[&str]) -> Option<SpecialtyMatch> {
    let mut score = 0.0f32;
    let mut named = false;
    let mut matched = Vec::new();
    let name = s.name.to_lowercase();
    let phrases = std::iter::once((name.as_str(), 5.0))
        .chain(s.synonyms.lines().map(|p| (p, 4.0)))
        .chain(s.symptoms.lines().map(|p| (p, 3.0)));
    for (phrase, weight) in phrases {
        let phrase = phrase.trim();
        if phrase.is_empty() {
            continue;
        }
        if contains_phrase(query, phrase) {
            score += weight;
            named |= weight >= 4.0;
            matched.push(phrase.to_owned());
        } else if phrase
            .split_whitespace()
            .any(|pw| pw.len() >= 4 && words.iter().any(|w| shares_stem(w, pw)))
        {
            score += 1.0;
            matched.push(phrase.to_owned());
        }
    }
    // A specialty named outright ("a pediatrician") outweighs symptoms that other
    // specialties share ("fever", "cough").
    if named {
        score += 10.0;
    }
    (score > 0.0).then(|| SpecialtyMatch {
        specialty: s.clone(),
        score,
        matched,
    })
}

/// `phrase` occurs in `text` on word boundaries.
fn contains_phrase(text: &str, phrase: &str) -> bool {
    text.match_indices(phrase).any(|(i, _)| {
        let before = text[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let after = text[i + phrase.len()..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric());
        before && after
    })
}

fn shares_stem(a: &str, b: &str) -> bool {
    let n = a.len().min(b.len());
    n >= 4 && a.is_char_boundary(n) && b.is_char_boundary(n) && a[..n] == b[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_is_complete() {
        let seeds: Vec<Seed> = serde_json::from_str(CATALOGUE).unwrap();
        assert!(seeds.len() >= 30, "{}", seeds.len());
        let mut slugs: Vec<&str> = seeds.iter().map(|s| s.slug.as_str()).collect();
        slugs.sort_unstable();
        slugs.dedup();
        assert_eq!(slugs.len(), seeds.len(), "duplicate slugs");
        assert!(
            seeds
                .iter()
                .all(|s| !s.description.is_empty() && !s.symptoms.is_empty())
        );
    }

    #[test]
    fn phrases_match_on_word_boundaries() {
        assert!(contains_phrase("i have a rash on my arm", "rash"));
        assert!(!contains_phrase("i am brash", "rash"));
        assert!(shares_stem("itch", "itchy"));
        assert!(!shares_stem("itch", "kitchen"));
    }
}
