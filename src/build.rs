//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds the
//! folders at compile time, and a new file alone would not make cargo rebuild.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
