//! The module map holds: every `crate::` path in `src/` points down the layers listed here,
//! never up or sideways into a later area, so the graph has no cycles and a new area
//! (records, pharmacy, billing) slots in without tangling the old ones.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top-level modules, lowest first: each may use only those before it.
const LAYERS: &[&str] = &[
    "error", "zone", "config", "crypto", "db", "storage", "notify", "domain", "tools", "llm",
    "agent", "jobs", "cache", "state", "http", "web", "app", "demo", "eval", "cli",
];

/// The domain's modules and areas, lowest first: each may use only those before it.
const DOMAIN: &[&str] = &[
    "actor",
    "validate",
    "audit",
    "idempotency",
    "orchestration",
    "outbox",
    "identity",
    "clinics",
    "scheduling",
    "care",
    "clinical",
    "pharmacy",
    "billing",
    "erasure",
];

#[test]
fn every_module_uses_only_the_layers_and_areas_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = BTreeSet::new();
    let mut edges = 0;
    for (unit, file) in units(&src) {
        let text = std::fs::read_to_string(&file).expect("a source file is readable");
        // Unit tests may reach anywhere; the rule is for what ships.
        let shipped = text.split("#[cfg(test)]").next().unwrap_or_default();
        for target in targets(shipped) {
            if target == unit {
                continue;
            }
            edges += 1;
            if rank(&target) >= rank(&unit) {
                wrong.insert(format!(
                    "{} uses {target}",
                    file.strip_prefix(&src).unwrap_or(&file).display()
                ));
            }
        }
    }
    assert!(
        edges > 100,
        "the scan found only {edges} edges: is it reading src/?"
    );
    assert!(
        wrong.is_empty(),
        "imports against the layers (lowest first: {LAYERS:?}; domain areas: {DOMAIN:?}):\n{}",
        wrong.into_iter().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_scan_reads_grouped_and_nested_paths() {
    let found = targets(
        "use crate::domain::{care::notes, clinics::{self, doctors}};\n\
         use crate::{on_db, tools::dates};\n let x = crate::agent::offline::LABEL;",
    );
    assert_eq!(
        found,
        ["agent", "domain/care", "domain/clinics", "tools"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    assert!(rank("domain/care") > rank("domain/scheduling"));
    assert!(rank("http") > rank("domain/erasure"));
}

/// Where a unit sits: its layer, and within the domain its area.
fn rank(unit: &str) -> (usize, usize) {
    let (top, area) = unit.split_once('/').unwrap_or((unit, ""));
    let layer = LAYERS.iter().position(|l| *l == top);
    let layer = layer.unwrap_or_else(|| panic!("{top} is not in LAYERS: add it where it belongs"));
    if area.is_empty() {
        return (layer, usize::MAX);
    }
    let area_rank = DOMAIN.iter().position(|a| *a == area);
    (
        layer,
        area_rank
            .unwrap_or_else(|| panic!("domain/{area} is not in DOMAIN: add it where it belongs")),
    )
}

/// Every shipped source file with its unit (`http`, `domain/care`, …); modules compiled
/// for tests only (`#[cfg(test)] mod x;`) are left out.
fn units(src: &Path) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let test_only: BTreeSet<PathBuf> = files
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let dir = match file.file_name().and_then(|n| n.to_str()) {
                Some("mod.rs" | "lib.rs" | "main.rs") => file.with_file_name(""),
                _ => file.with_extension(""),
            };
            test_modules(&text)
                .into_iter()
                .flat_map(move |m| [dir.join(format!("{m}.rs")), dir.join(&m).join("mod.rs")])
                .collect::<Vec<_>>()
        })
        .collect();
    files
        .into_iter()
        .filter(|f| !test_only.contains(f))
        .filter_map(|file| {
            let rel = file.strip_prefix(src).ok()?.with_extension("");
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let unit = match parts.as_slice() {
                [one] if ["lib", "main", "build"].contains(&one.as_str()) => return None,
                [domain, area, ..] if domain == "domain" && area != "mod" => {
                    format!("domain/{area}")
                }
                [top, ..] => top.clone(),
                [] => return None,
            };
            Some((unit, file))
        })
        .collect()
}

/// Names of modules declared `#[cfg(test)] mod name;` in a file.
fn test_modules(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        rest = &rest[at + "#[cfg(test)]".len()..];
        let line = rest.trim_start();
        let line = line.strip_prefix("pub(crate) ").unwrap_or(line);
        let line = line.strip_prefix("pub ").unwrap_or(line);
        if let Some(decl) = line.strip_prefix("mod ")
            && let Some((name, _)) = decl.split_once(';')
            && name.chars().all(|c| c.is_alphanumeric() || c == '_')
        {
            found.push(name.to_owned());
        }
    }
    found
}

/// The units a text's `crate::` paths reach: top-level modules, and `domain/<area>`.
fn targets(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        // `clinic::crate::` cannot occur; `$crate::` (macros) names the crate too.
        rest = &rest[at + "crate::".len()..];
        for path in paths(rest) {
            let mut segments = path.iter();
            let Some(top) = segments.next() else { continue };
            if !LAYERS.contains(&top.as_str()) {
                continue; // macros and items at the crate root
            }
            match (top.as_str(), segments.next()) {
                ("domain", Some(area)) if DOMAIN.contains(&area.as_str()) => {
                    found.insert(format!("domain/{area}"));
                }
                _ => {
                    found.insert(top.clone());
                }
            }
        }
    }
    found
}

/// The paths of a use tree or path expression at the start of `text`, first two
/// segments of each (`domain::{care::notes, clinics}` → `[domain, care]`, `[domain, clinics]`).
fn paths(text: &str) -> Vec<Vec<String>> {
    fn tree(text: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
        let mut path = prefix;
        let mut i = 0;
        let bytes = text.as_bytes();
        loop {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            if i > start {
                path.push(text[start..i].to_owned());
            }
            if text[i..].starts_with("::{") {
                i += 3;
                loop {
                    let rest = text[i..].trim_start();
                    i = text.len() - rest.len();
                    if rest.starts_with('}') {
                        i += 1;
                        break;
                    }
                    i += tree(&text[i..], path.clone(), out);
                    let rest = text[i..].trim_start();
                    i = text.len() - rest.len();
                    if rest.starts_with(',') {
                        i += 1;
                    } else if rest.starts_with('}') {
                        i += 1;
                        break;
                    } else {
                        break;
                    }
                }
                return i;
            }
            if text[i..].starts_with("::") {
                i += 2;
                continue;
            }
            path.truncate(2);
            if !path.is_empty() {
                out.push(path);
            }
            return i;
        }
    }
    let mut out = Vec::new();
    match text.strip_prefix('{') {
        // `crate::{a, b::c}`: a group right after the crate.
        Some(_) => tree(&format!("::{text}"), Vec::new(), &mut out),
        None => tree(text, Vec::new(), &mut out),
    };
    out
}

#[test]
fn the_readme_map_names_every_domain_area() {
    // The map is the README's "What each part does": it grows with the code.
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md is readable");
    let missing: BTreeSet<&str> = DOMAIN
        .iter()
        .copied()
        .filter(|a| !readme.contains(&format!("domain/{a}")))
        .collect();
    assert!(missing.is_empty(), "README's map lacks {missing:?}");
}

/// The API description names each schema by its type's name, and a second type of the same
/// name silently replaces the first there (a client would be told the wrong shape): every
/// type that derives `ToSchema` or comes from `text_enum!` has a name of its own.
#[test]
fn every_schema_in_the_api_description_is_one_type() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut seen: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (_, file) in units(&src) {
        let text = std::fs::read_to_string(&file).expect("readable source");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let schema = line.contains("derive(") && line.contains("ToSchema")
                || line.trim_start().starts_with("crate::text_enum!");
            if !schema {
                continue;
            }
            // The type this attribute (or macro) declares: the next `pub struct|enum`.
            let declared = lines[i..].iter().take(12).find_map(|l| {
                let l = l.trim_start();
                ["pub struct ", "pub enum "]
                    .iter()
                    .find_map(|p| l.strip_prefix(p))
                    .map(|rest| {
                        rest.chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect::<String>()
                    })
            });
            if let Some(name) = declared {
                seen.entry(name)
                    .or_default()
                    .push(file.display().to_string());
            }
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, files)| files.len() > 1).collect();
    assert!(
        twice.is_empty(),
        "schema names used by more than one type: {twice:?}"
    );
    assert!(
        seen.len() > 100,
        "the scan found the schemas: {}",
        seen.len()
    );
}
