//! The `include_file` option: one generated file that declares the nested
//! `pub mod` tree of every generated package and `include!`s each package's
//! file in its module, so the output drops into a crate with one `include!`.
//! The shape is prost-build's (`Config::write_includes`): modules sorted,
//! four-space indents, a package's `include!` before its child modules.

use crate::names;

/// How the include file names the files it includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IncludePaths {
    /// `include!("a.rs");`: relative to the include file, which sits beside
    /// the files (the plugin; `build.rs` with an explicit `out_dir`, as
    /// prost-build does).
    Relative,
    /// `include!(concat!(env!("OUT_DIR"), "/a.rs"));`: `build.rs` writing to
    /// `$OUT_DIR`, as prost-build does.
    OutDir,
}

/// The Rust module path of a protobuf package: its parts snake_cased and
/// escaped as everywhere else in codegen (`a.type` is `a::r#type`); empty
/// for no package.
pub(crate) fn module_path(package: &str) -> Vec<String> {
    package
        .split('.')
        .filter(|part| !part.is_empty())
        .map(names::to_snake)
        .collect()
}

/// The include file's body for `(module path, file name)` pairs, after
/// `header`. Files without a package (an empty module path) are included at
/// the top level.
pub(crate) fn render(
    header: &str,
    mut entries: Vec<(Vec<String>, String)>,
    paths: IncludePaths,
) -> String {
    entries.sort();
    let mut out = String::from(header);
    // The modules open around the current line, outermost first.
    let mut open: Vec<&str> = Vec::new();
    for (module, file) in &entries {
        while !module.iter().zip(&open).all(|(m, o)| m == o) || open.len() > module.len() {
            open.pop();
            line(&mut out, open.len(), "}");
        }
        while open.len() < module.len() {
            let name = &module[open.len()];
            line(&mut out, open.len(), &format!("pub mod {name} {{"));
            open.push(name);
        }
        let include = match paths {
            IncludePaths::Relative => format!("include!(\"{file}\");"),
            IncludePaths::OutDir => format!("include!(concat!(env!(\"OUT_DIR\"), \"/{file}\"));"),
        };
        line(&mut out, open.len(), &include);
    }
    for depth in (0..open.len()).rev() {
        line(&mut out, depth, "}");
    }
    out
}

fn line(out: &mut String, depth: usize, text: &str) {
    for _ in 0..depth {
        out.push_str("    ");
    }
    out.push_str(text);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(packages: &[&str]) -> Vec<(Vec<String>, String)> {
        packages
            .iter()
            .map(|p| {
                let module = module_path(p);
                let file = if module.is_empty() {
                    "_.rs".to_owned()
                } else {
                    format!("{}.rs", module.join("."))
                };
                (module, file)
            })
            .collect()
    }

    /// prost-build's own fixture (`src/fixtures/write_includes/_.includes.rs`)
    /// for the same packages, with `_.rs` for the file without a package.
    #[test]
    fn tree_matches_prost_build() {
        let packages = [
            "foo.bar.baz",
            "",
            "foo.bar",
            "bar",
            "foo",
            "foo.bar.qux",
            "foo.bar.a.b.c",
        ];
        let expected = "// header\n\
include!(concat!(env!(\"OUT_DIR\"), \"/_.rs\"));
pub mod bar {
    include!(concat!(env!(\"OUT_DIR\"), \"/bar.rs\"));
}
pub mod foo {
    include!(concat!(env!(\"OUT_DIR\"), \"/foo.rs\"));
    pub mod bar {
        include!(concat!(env!(\"OUT_DIR\"), \"/foo.bar.rs\"));
        pub mod a {
            pub mod b {
                pub mod c {
                    include!(concat!(env!(\"OUT_DIR\"), \"/foo.bar.a.b.c.rs\"));
                }
            }
        }
        pub mod baz {
            include!(concat!(env!(\"OUT_DIR\"), \"/foo.bar.baz.rs\"));
        }
        pub mod qux {
            include!(concat!(env!(\"OUT_DIR\"), \"/foo.bar.qux.rs\"));
        }
    }
}
";
        assert_eq!(
            render("// header\n", entries(&packages), IncludePaths::OutDir),
            expected
        );
    }

    #[test]
    fn relative_paths_and_escaped_names() {
        let out = render(
            "",
            entries(&["a", "a.b", "a.type", "Self.Inner"]),
            IncludePaths::Relative,
        );
        assert_eq!(
            out,
            "pub mod a {
    include!(\"a.rs\");
    pub mod b {
        include!(\"a.b.rs\");
    }
    pub mod r#type {
        include!(\"a.r#type.rs\");
    }
}
pub mod self_ {
    pub mod inner {
        include!(\"self_.inner.rs\");
    }
}
"
        );
    }

    #[test]
    fn nothing_generated_is_just_the_header() {
        assert_eq!(
            render("// h\n", Vec::new(), IncludePaths::Relative),
            "// h\n"
        );
    }

    #[test]
    fn siblings_close_their_modules() {
        // `a.b` then `a.c`: `b` closes before `c` opens, `a` stays open.
        let out = render("", entries(&["a.c", "a.b"]), IncludePaths::Relative);
        assert_eq!(
            out,
            "pub mod a {
    pub mod b {
        include!(\"a.b.rs\");
    }
    pub mod c {
        include!(\"a.c.rs\");
    }
}
"
        );
    }
}
