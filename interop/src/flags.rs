//! Command-line flags in the interop suite's style: `--name=value` or `--name value`,
//! every flag named in advance, booleans spelled `true`/`false`.

use std::collections::HashMap;

/// Parsed flags: each known flag's value, defaulted where not given.
#[derive(Debug)]
pub struct Flags {
    values: HashMap<&'static str, String>,
}

impl Flags {
    /// Parses `args` (without the program name) against `known`: `(name, default)`
    /// pairs, names without the leading `--`. An unknown flag, a missing value or a
    /// positional argument is an error naming it.
    pub fn parse(
        args: impl IntoIterator<Item = String>,
        known: &[(&'static str, &str)],
    ) -> Result<Flags, String> {
        let mut values: HashMap<&'static str, String> = known
            .iter()
            .map(|&(name, default)| (name, default.to_owned()))
            .collect();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let Some(flag) = arg.strip_prefix("--") else {
                return Err(format!("unexpected argument {arg:?}"));
            };
            let (name, inline) = match flag.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (flag, None),
            };
            let Some(&(known_name, _)) = known.iter().find(|(k, _)| *k == name) else {
                let names: Vec<String> = known.iter().map(|(k, _)| format!("--{k}")).collect();
                return Err(format!(
                    "unknown flag --{name}; known: {}",
                    names.join(", ")
                ));
            };
            let value = match inline {
                Some(value) => value,
                None => args
                    .next()
                    .ok_or_else(|| format!("flag --{name} needs a value"))?,
            };
            values.insert(known_name, value);
        }
        Ok(Flags { values })
    }

    /// The value of `name`, which must be one of the known flags.
    pub fn string(&self, name: &str) -> &str {
        // Flags::parse put every known flag in the map; asking for another is a
        // programming error.
        self.values
            .get(name)
            .unwrap_or_else(|| panic!("flag --{name} was not declared"))
    }

    /// The value of `name` as `T`.
    pub fn parsed<T: std::str::FromStr>(&self, name: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        let text = self.string(name);
        text.parse()
            .map_err(|e| format!("bad value {text:?} for --{name}: {e}"))
    }

    /// The value of `name` as a boolean (`true`/`false`, `1`/`0`, `yes`/`no`).
    pub fn bool(&self, name: &str) -> Result<bool, String> {
        match self.string(name).to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            other => Err(format!("--{name} expects true or false, got {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Flags;

    const KNOWN: &[(&str, &str)] = &[("port", "0"), ("use_tls", "false"), ("host", "127.0.0.1")];

    fn parse(args: &[&str]) -> Result<Flags, String> {
        Flags::parse(args.iter().map(|s| s.to_string()), KNOWN)
    }

    #[test]
    fn both_spellings_and_defaults() {
        let flags = parse(&["--port", "10000", "--use_tls=false"]).unwrap();
        assert_eq!(flags.parsed::<u16>("port"), Ok(10000));
        assert_eq!(flags.bool("use_tls"), Ok(false));
        assert_eq!(flags.string("host"), "127.0.0.1");
        let flags = parse(&["--port=1", "--host", "::1"]).unwrap();
        assert_eq!(flags.parsed::<u16>("port"), Ok(1));
        assert_eq!(flags.string("host"), "::1");
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(
            parse(&["--nope=1"])
                .unwrap_err()
                .contains("unknown flag --nope")
        );
        assert!(parse(&["--port"]).unwrap_err().contains("needs a value"));
        assert!(
            parse(&["stray"])
                .unwrap_err()
                .contains("unexpected argument")
        );
        let flags = parse(&["--use_tls=maybe", "--port=x"]).unwrap();
        assert!(flags.bool("use_tls").is_err());
        assert!(flags.parsed::<u16>("port").unwrap_err().contains("--port"));
    }
}
