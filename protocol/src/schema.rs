//! JSON Schemas of the documents people and the planner write, for editors and CI.
//!
//! They are generated from the Rust types (the types are the source of truth) and committed under
//! `schemas/`; the `schemas_are_fresh` test fails when a type changed and the files did not.
//! Regenerate with `UPDATE_SCHEMAS=1 cargo test -p orchestrate-protocol schemas_are_fresh`.

use schemars::{schema_for, Schema};

use crate::config::ThreadConfig;
use crate::fr::Fr;
use crate::plan::WorkPlan;
use crate::roles::RolesFile;

/// Schema of `roles.yaml`.
pub fn roles_schema() -> Schema {
    schema_for!(RolesFile)
}

/// Schema of `FR-<n>.yaml`.
pub fn fr_schema() -> Schema {
    schema_for!(Fr)
}

/// Schema of `config.yaml`.
pub fn config_schema() -> Schema {
    schema_for!(ThreadConfig)
}

/// Schema of `WORK_PLAN.json`.
pub fn work_plan_schema() -> Schema {
    schema_for!(WorkPlan)
}

/// Every committed schema: its file name under `schemas/` and its content.
pub fn all() -> Vec<(&'static str, Schema)> {
    vec![
        ("roles.schema.json", roles_schema()),
        ("fr.schema.json", fr_schema()),
        ("config.schema.json", config_schema()),
        ("work_plan.schema.json", work_plan_schema()),
    ]
}

/// Pretty JSON of a schema as committed (two-space indent, trailing newline).
pub fn render(schema: &Schema) -> String {
    let mut s = serde_json::to_string_pretty(schema).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas")
    }

    #[test]
    fn schemas_are_fresh() {
        let update = std::env::var_os("UPDATE_SCHEMAS").is_some();
        let mut stale = Vec::new();
        for (name, schema) in all() {
            let path = dir().join(name);
            let want = render(&schema);
            let have = std::fs::read_to_string(&path).unwrap_or_default();
            if have != want {
                if update {
                    std::fs::write(&path, &want).unwrap();
                } else {
                    stale.push(name);
                }
            }
        }
        assert!(
            stale.is_empty(),
            "schemas/{} out of date with the Rust types; regenerate with: \
             UPDATE_SCHEMAS=1 cargo test -p orchestrate-protocol schemas_are_fresh",
            stale.join(", schemas/")
        );
    }

    /// The committed schemas accept the shipped documents (what an editor would check as you
    /// type) and reject a misspelled field.
    #[test]
    fn shipped_documents_validate_against_the_schemas() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let cases = [
            (roles_schema(), "roles.yaml"),
            (fr_schema(), "examples/textkit/frs/FR-12.yaml"),
            (config_schema(), "examples/textkit/frs/config.yaml"),
        ];
        for (schema, file) in cases {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
            let v = jsonschema::validator_for(&schema.to_value()).unwrap();
            let errors: Vec<String> = v.iter_errors(&doc).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{file}: {errors:?}");
            let mut bad = doc.clone();
            bad.as_object_mut()
                .unwrap()
                .insert("limts".into(), serde_json::json!(1));
            assert!(!v.is_valid(&bad), "{file}: schema accepts an unknown field");
        }
    }

    #[test]
    fn roles_schema_names_the_six_roles() {
        let s = serde_json::to_string(&roles_schema()).unwrap();
        for r in crate::roles::RoleName::ALL {
            assert!(s.contains(r.as_str()), "{r} missing from schema");
        }
    }
}
