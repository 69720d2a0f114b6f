//! build.rs errors read like protoc's: `path:line:column: message`, with the
//! path as it was passed to `compile`, and the include path listed when an
//! import is missing. `Debug` prints the same line, because that is what a
//! `main` returning `Result<(), Box<dyn Error>>` prints.
//!
//! The paths are relative to the crate directory, where cargo runs tests.

use protoc_gen_rgrpc::Builder;

const INCLUDE: &str = "tests/errors";

fn error_for(proto: &str) -> protoc_gen_rgrpc::Error {
    Builder::new()
        .generate(&[proto], &[INCLUDE])
        .expect_err("the fixture is broken on purpose")
}

/// What a build script's `main` would hand back to the runtime.
fn build_main(proto: &str) -> Result<(), Box<dyn std::error::Error>> {
    Builder::new()
        .out_dir(concat!(env!("CARGO_TARGET_TMPDIR"), "/build-errors"))
        .compile(&[proto], &[INCLUDE])?;
    Ok(())
}

#[test]
fn syntax_error_has_line_and_column() {
    // Line 5 is `message Entry { string key = 1 string value = 2; }`: the
    // second `string`, where `;` was expected, starts at column 32.
    let error = error_for("tests/errors/syntax.proto");
    let text = error.to_string();
    assert!(
        text.starts_with("tests/errors/syntax.proto:5:32: "),
        "{text}"
    );
    assert!(text.contains("expected"), "{text}");
    assert!(error.is_input());
    assert_eq!(format!("{error:?}"), text);
}

#[test]
fn missing_import_names_the_import_and_the_include_path() {
    // Line 3 is `import "nowhere/absent.proto";`.
    let text = error_for("tests/errors/missing_import.proto").to_string();
    assert!(
        text.starts_with("tests/errors/missing_import.proto:3:1: "),
        "{text}"
    );
    assert!(text.contains("nowhere/absent.proto"), "{text}");
    assert!(text.contains("include path: tests/errors"), "{text}");
}

#[test]
fn undefined_type_has_line_and_column() {
    // Line 6 is `  other.Thing thing = 1;`: the type name starts at column 3.
    let text = error_for("tests/errors/undefined.proto").to_string();
    assert!(
        text.starts_with("tests/errors/undefined.proto:6:3: "),
        "{text}"
    );
    assert!(text.contains("other.Thing"), "{text}");
}

#[test]
fn main_prints_the_line_not_a_struct() {
    let error = build_main("tests/errors/syntax.proto").unwrap_err();
    let debug = format!("{error:?}");
    assert_eq!(debug, error.to_string());
    assert!(
        debug.starts_with("tests/errors/syntax.proto:5:32: "),
        "{debug}"
    );
}

#[test]
fn missing_listed_file_lists_the_include_path() {
    let text = error_for("tests/errors/absent.proto").to_string();
    assert!(text.contains("absent.proto"), "{text}");
    assert!(text.contains("include path: tests/errors"), "{text}");
}
