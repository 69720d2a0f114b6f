//! Both READMEs list every plugin option (the ones the plugin itself names in its
//! unknown-parameter error), and protoc-gen-rgrpc/README.md's table gives each a
//! default.

use std::path::Path;

use protoc_gen_rgrpc::Options;

/// The option names from the plugin's own "known: ..." list.
fn known_options() -> Vec<String> {
    let error = Options::parse("no_such_option=1").unwrap_err().to_string();
    let known = error
        .split_once("known: ")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(list, _)| list)
        .unwrap_or_else(|| panic!("the error lists the known options: {error}"));
    known.split(", ").map(str::to_owned).collect()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_option_is_documented_with_a_default() {
    let options = known_options();
    assert!(options.len() > 10, "{options:?}");
    let top = read("../README.md");
    let plugin = read("README.md");
    for option in &options {
        assert!(
            top.contains(&format!("`{option}")),
            "README.md does not list `{option}`"
        );
        // The options table: `| `option...` | `.method(...)` | default | meaning |`.
        let row = plugin
            .lines()
            .find(|l| l.starts_with(&format!("| `{option}")))
            .unwrap_or_else(|| panic!("protoc-gen-rgrpc/README.md has no row for `{option}`"));
        let cells: Vec<&str> = row.split(" | ").collect();
        assert!(
            cells.len() >= 4 && !cells[2].trim().is_empty(),
            "no default for `{option}`: {row}"
        );
        assert!(
            cells[1].contains(&format!(".{option}(")),
            "no Builder method for `{option}`: {row}"
        );
    }
}
