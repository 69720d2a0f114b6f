//! The descriptor index: the encoded files of the registered services and their
//! imports, by file name, and every symbol and extension they declare, by the names
//! reflection clients ask for. Pure: built from bytes, no I/O.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use prost::Message;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorProto};

/// One file: its encoded descriptor as embedded, and the files it imports.
#[derive(Debug)]
struct File {
    encoded: &'static [u8],
    dependencies: Vec<String>,
}

/// What the reflection service answers from.
#[derive(Debug, Default)]
pub(crate) struct Index {
    files: HashMap<String, File>,
    /// Fully-qualified symbol (no leading dot) -> the file that declares it:
    /// services, methods, messages and enums (nested too), fields, oneofs, enum
    /// values (in their enum's parent scope, as protobuf scopes them) and extensions.
    symbols: HashMap<String, String>,
    /// Messages, for `all_extension_numbers_of_type` on a type with no extensions.
    messages: HashSet<String>,
    /// (extendee, field number) -> the file that declares the extension.
    extensions: HashMap<(String, i32), String>,
}

impl Index {
    /// Indexes every descriptor of `files` (each given once or more: the first of a
    /// name wins). A descriptor that does not decode is skipped: it came from
    /// generated code, so that would be a generator bug, not client input.
    pub(crate) fn new<'a>(files: impl IntoIterator<Item = &'a &'static [u8]>) -> Index {
        let mut index = Index::default();
        for encoded in files {
            let Ok(file) = FileDescriptorProto::decode(*encoded) else {
                continue;
            };
            if index.files.contains_key(file.name()) {
                continue;
            }
            index.add(&file);
            index.files.insert(
                file.name().to_owned(),
                File {
                    encoded,
                    dependencies: file.dependency.clone(),
                },
            );
        }
        index
    }

    /// The file declaring `symbol` (fully qualified; a leading dot is accepted).
    pub(crate) fn file_containing_symbol(&self, symbol: &str) -> Option<&str> {
        let symbol = symbol.strip_prefix('.').unwrap_or(symbol);
        self.symbols.get(symbol).map(String::as_str)
    }

    /// The file declaring the extension of `extendee` numbered `number`.
    pub(crate) fn file_containing_extension(&self, extendee: &str, number: i32) -> Option<&str> {
        let extendee = extendee.strip_prefix('.').unwrap_or(extendee);
        self.extensions
            .get(&(extendee.to_owned(), number))
            .map(String::as_str)
    }

    /// The numbers of the known extensions of message `extendee`, sorted; `None` when
    /// no known file declares that message.
    pub(crate) fn extension_numbers(&self, extendee: &str) -> Option<Vec<i32>> {
        let extendee = extendee.strip_prefix('.').unwrap_or(extendee);
        if !self.messages.contains(extendee) {
            return None;
        }
        let numbers: BTreeSet<i32> = self
            .extensions
            .keys()
            .filter(|(e, _)| e == extendee)
            .map(|(_, n)| *n)
            .collect();
        Some(numbers.into_iter().collect())
    }

    /// Whether a file of that name is known.
    pub(crate) fn has_file(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }

    /// `name`'s encoded descriptor, then those of its transitive imports that are
    /// not in `sent`, breadth first; every file returned is added to `sent`. The
    /// requested file itself is always returned (grpc-go does the same), as the
    /// client asked for it. An import missing from the index is left out.
    pub(crate) fn file_with_imports(
        &self,
        name: &str,
        sent: &mut HashSet<String>,
    ) -> Vec<&'static [u8]> {
        let mut out = Vec::new();
        let Some(file) = self.files.get(name) else {
            return out;
        };
        out.push(file.encoded);
        sent.insert(name.to_owned());
        let mut queue: VecDeque<&str> = file.dependencies.iter().map(String::as_str).collect();
        while let Some(dep) = queue.pop_front() {
            if sent.contains(dep) {
                continue;
            }
            let Some(file) = self.files.get(dep) else {
                continue;
            };
            sent.insert(dep.to_owned());
            out.push(file.encoded);
            queue.extend(file.dependencies.iter().map(String::as_str));
        }
        out
    }

    fn add(&mut self, file: &FileDescriptorProto) {
        let name = file.name().to_owned();
        let scope = file.package().to_owned();
        for service in &file.service {
            let service_name = join(&scope, service.name());
            for method in &service.method {
                self.symbol(join(&service_name, method.name()), &name);
            }
            self.symbol(service_name, &name);
        }
        for message in &file.message_type {
            self.add_message(&scope, message, &name);
        }
        for e in &file.enum_type {
            self.add_enum(&scope, e, &name);
        }
        for extension in &file.extension {
            self.add_extension(&scope, extension, &name);
        }
    }

    fn add_message(&mut self, scope: &str, message: &DescriptorProto, file: &str) {
        let full = join(scope, message.name());
        for field in &message.field {
            self.symbol(join(&full, field.name()), file);
        }
        for oneof in &message.oneof_decl {
            self.symbol(join(&full, oneof.name()), file);
        }
        for nested in &message.nested_type {
            self.add_message(&full, nested, file);
        }
        for e in &message.enum_type {
            self.add_enum(&full, e, file);
        }
        for extension in &message.extension {
            self.add_extension(&full, extension, file);
        }
        self.messages.insert(full.clone());
        self.symbol(full, file);
    }

    fn add_enum(&mut self, scope: &str, e: &EnumDescriptorProto, file: &str) {
        for value in &e.value {
            self.symbol(join(scope, value.name()), file);
        }
        self.symbol(join(scope, e.name()), file);
    }

    fn add_extension(
        &mut self,
        scope: &str,
        extension: &prost_types::FieldDescriptorProto,
        file: &str,
    ) {
        self.symbol(join(scope, extension.name()), file);
        let extendee = extension.extendee();
        let extendee = extendee.strip_prefix('.').unwrap_or(extendee).to_owned();
        self.extensions
            .entry((extendee, extension.number()))
            .or_insert_with(|| file.to_owned());
    }

    fn symbol(&mut self, symbol: String, file: &str) {
        self.symbols
            .entry(symbol)
            .or_insert_with(|| file.to_owned());
    }
}

fn join(scope: &str, name: &str) -> String {
    match scope {
        "" => name.to_owned(),
        scope => format!("{scope}.{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{
        EnumValueDescriptorProto, FieldDescriptorProto, MethodDescriptorProto,
        OneofDescriptorProto, ServiceDescriptorProto,
    };

    fn leak(file: FileDescriptorProto) -> &'static [u8] {
        Box::leak(file.encode_to_vec().into_boxed_slice())
    }

    fn field(name: &str, number: i32, extendee: Option<&str>) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            extendee: extendee.map(Into::into),
            ..Default::default()
        }
    }

    fn files() -> Vec<&'static [u8]> {
        let base = FileDescriptorProto {
            name: Some("base.proto".into()),
            package: Some("b".into()),
            message_type: vec![DescriptorProto {
                name: Some("Ext".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let main = FileDescriptorProto {
            name: Some("main.proto".into()),
            package: Some("p.q".into()),
            dependency: vec!["base.proto".into(), "gone.proto".into()],
            message_type: vec![DescriptorProto {
                name: Some("Outer".into()),
                field: vec![field("id", 1, None)],
                oneof_decl: vec![OneofDescriptorProto {
                    name: Some("choice".into()),
                    ..Default::default()
                }],
                nested_type: vec![DescriptorProto {
                    name: Some("Inner".into()),
                    ..Default::default()
                }],
                enum_type: vec![EnumDescriptorProto {
                    name: Some("Kind".into()),
                    value: vec![EnumValueDescriptorProto {
                        name: Some("KIND_A".into()),
                        number: Some(0),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                extension: vec![field("nested_ext", 101, Some(".b.Ext"))],
                ..Default::default()
            }],
            extension: vec![field("top_ext", 100, Some(".b.Ext"))],
            service: vec![ServiceDescriptorProto {
                name: Some("Svc".into()),
                method: vec![MethodDescriptorProto {
                    name: Some("Get".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        vec![leak(main), leak(base)]
    }

    #[test]
    fn finds_every_kind_of_symbol() {
        let index = Index::new(&files());
        for (symbol, file) in [
            ("p.q.Svc", "main.proto"),
            ("p.q.Svc.Get", "main.proto"),
            ("p.q.Outer", "main.proto"),
            (".p.q.Outer", "main.proto"),
            ("p.q.Outer.id", "main.proto"),
            ("p.q.Outer.choice", "main.proto"),
            ("p.q.Outer.Inner", "main.proto"),
            ("p.q.Outer.Kind", "main.proto"),
            ("p.q.Outer.KIND_A", "main.proto"),
            ("p.q.top_ext", "main.proto"),
            ("p.q.Outer.nested_ext", "main.proto"),
            ("b.Ext", "base.proto"),
        ] {
            assert_eq!(index.file_containing_symbol(symbol), Some(file), "{symbol}");
        }
        for missing in ["p.q", "p.q.Nope", "Outer", "p.q.Outer.Kind.KIND_A", ""] {
            assert_eq!(index.file_containing_symbol(missing), None, "{missing}");
        }
    }

    #[test]
    fn extensions() {
        let index = Index::new(&files());
        assert_eq!(
            index.file_containing_extension("b.Ext", 100),
            Some("main.proto")
        );
        assert_eq!(
            index.file_containing_extension(".b.Ext", 101),
            Some("main.proto")
        );
        assert_eq!(index.file_containing_extension("b.Ext", 102), None);
        assert_eq!(index.extension_numbers("b.Ext"), Some(vec![100, 101]));
        assert_eq!(index.extension_numbers("p.q.Outer"), Some(vec![]));
        assert_eq!(index.extension_numbers("p.q.Svc"), None, "not a message");
        assert_eq!(index.extension_numbers("x.Y"), None);
    }

    #[test]
    fn a_file_comes_with_the_imports_not_sent_yet() {
        let files = files();
        let index = Index::new(&files);
        let mut sent = HashSet::new();
        assert_eq!(index.file_with_imports("main.proto", &mut sent), files);
        assert_eq!(index.file_with_imports("main.proto", &mut sent), [files[0]]);
        assert_eq!(index.file_with_imports("base.proto", &mut sent), [files[1]]);
        assert!(index.file_with_imports("gone.proto", &mut sent).is_empty());
        assert!(index.has_file("base.proto") && !index.has_file("gone.proto"));
    }

    #[test]
    fn garbage_and_duplicates_are_skipped() {
        let mut all = files();
        all.push(b"\xff\xff\xff");
        all.push(all[0]);
        let index = Index::new(&all);
        assert_eq!(index.files.len(), 2);
    }
}
