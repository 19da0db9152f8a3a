//! Reading a source file into a tree: YAML (with anchors and merge keys) or JSON, with a
//! located error for text that is neither.

use serde_json::Value;

use crate::ImportError;

/// The largest file an import reads: bigger than any real deployment file.
const MAX_SOURCE_BYTES: usize = 4 * 1024 * 1024;

pub fn yaml(file: &str, text: &str) -> Result<Value, ImportError> {
    check_size(file, text)?;
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    // Real Compose files use a few anchors many times (60 services sharing `*defaults`), which
    // the ratio guard against alias bombs refuses; the absolute caps on events and nodes still
    // bound what an alias can expand to.
    let mut budget = serde_saphyr::budget::Budget::default();
    budget.enforce_alias_anchor_ratio = false;
    options.budget = Some(budget);
    // A Compose file may begin with `---`: a single document either way.
    serde_saphyr::from_str_with_options::<Value>(text, options).map_err(|error| {
        let at = error.location().filter(|at| at.line() >= 1);
        let message = error.without_snippet().to_string();
        let message = message.lines().next().unwrap_or("").to_string();
        ImportError {
            file: file.to_string(),
            line: at.map(|at| at.line() as usize),
            column: at.map(|at| at.column().max(1) as usize),
            message: format!("not readable as YAML: {message}"),
        }
    })
}

pub fn json(file: &str, text: &str) -> Result<Value, ImportError> {
    check_size(file, text)?;
    serde_json::from_str::<Value>(text).map_err(|error| ImportError {
        file: file.to_string(),
        line: Some(error.line()),
        column: Some(error.column().max(1)),
        message: format!("not readable as JSON: {error}"),
    })
}

fn check_size(file: &str, text: &str) -> Result<(), ImportError> {
    if text.len() > MAX_SOURCE_BYTES {
        return Err(ImportError::whole(
            file,
            format!(
                "the file is {} bytes; at most {MAX_SOURCE_BYTES} are read",
                text.len()
            ),
        ));
    }
    if text.trim().is_empty() {
        return Err(ImportError::whole(file, "the file is empty"));
    }
    Ok(())
}
