//! Proto comments (from `SourceCodeInfo`) turned into rustdoc lines.

use prost_types::FileDescriptorProto;

/// Field number of `FileDescriptorProto.service`, the first element of a
/// service's `SourceCodeInfo` path.
pub(crate) const FILE_SERVICE: i32 = 6;
/// Field number of `ServiceDescriptorProto.method`.
pub(crate) const SERVICE_METHOD: i32 = 2;

/// The doc lines for the element at `path` in `file`: leading comments, then
/// (after an empty line, if both exist) trailing ones, as prost does for
/// messages. Detached comments are not documentation and are dropped. A file
/// without source info (e.g. `protoc` without it) yields no lines.
pub(crate) fn doc_lines(file: &FileDescriptorProto, path: &[i32]) -> Vec<String> {
    let Some(location) = file
        .source_code_info
        .as_ref()
        .and_then(|info| info.location.iter().find(|l| l.path == path))
    else {
        return Vec::new();
    };
    let leading: Vec<&str> = location
        .leading_comments
        .as_deref()
        .map_or_else(Vec::new, |c| c.lines().collect());
    let trailing: Vec<&str> = location
        .trailing_comments
        .as_deref()
        .map_or_else(Vec::new, |c| c.lines().collect());
    let mut lines: Vec<String> = leading.iter().map(|l| sanitize(l)).collect();
    if !leading.is_empty() && !trailing.is_empty() {
        lines.push(String::new());
    }
    lines.extend(trailing.iter().map(|l| sanitize(l)));
    lines
}

/// Makes one comment line safe for rustdoc: bare URLs become `<url>` links,
/// brackets that are not a Markdown link are escaped (rustdoc would read them
/// as broken intra-doc links), and a leading space is added so that `///`
/// reads well.
fn sanitize(line: &str) -> String {
    let line = escape_brackets(&wrap_urls(line));
    let mut chars = line.chars();
    // Indent unless the line is empty or already starts with one space (more
    // than one space is a Markdown continuation and keeps its extra space).
    if chars
        .next()
        .is_some_and(|c| c != ' ' || chars.next() == Some(' '))
    {
        format!(" {line}")
    } else {
        line
    }
}

fn wrap_urls(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + 4);
    let mut rest = line;
    while let Some(start) = find_url(rest) {
        let (before, url_on) = rest.split_at(start);
        let end = url_on
            .find(|c: char| c.is_whitespace() || c == ')' || c == '>')
            .unwrap_or(url_on.len());
        let (url, after) = url_on.split_at(end);
        out.push_str(before);
        if before.ends_with('<') {
            out.push_str(url);
        } else {
            out.push('<');
            out.push_str(url);
            out.push('>');
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

fn find_url(s: &str) -> Option<usize> {
    match (s.find("http://"), s.find("https://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Escapes `[text]` unless it is a Markdown link (`[text](url)` or
/// `[text][ref]`) or already escaped.
fn escape_brackets(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut out = String::with_capacity(line.len() + 4);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() {
            out.push(c);
            out.push(chars[i + 1]);
            i += 2;
            continue;
        }
        if c == '[' {
            if let Some(close) = chars[i + 1..].iter().position(|&c| c == ']') {
                let close = i + 1 + close;
                let inner: String = chars[i + 1..close].iter().collect();
                // `[text](url)`, `[text][ref]`, and the `[ref]` of the latter.
                let is_link = matches!(chars.get(close + 1), Some('(') | Some('['))
                    || (i > 0 && chars[i - 1] == ']');
                if is_link {
                    out.push('[');
                    out.push_str(&inner);
                    out.push(']');
                } else {
                    out.push_str("\\[");
                    out.push_str(&inner);
                    out.push_str("\\]");
                }
                i = close + 1;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::{SourceCodeInfo, source_code_info::Location};

    fn file_with(location: Location) -> FileDescriptorProto {
        FileDescriptorProto {
            source_code_info: Some(SourceCodeInfo {
                location: vec![location],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn leading_and_trailing() {
        let file = file_with(Location {
            path: vec![6, 0, 2, 1],
            leading_comments: Some(" Leading one.\n Leading two.\n".into()),
            trailing_comments: Some(" Trailing.\n".into()),
            leading_detached_comments: vec![" detached\n".into()],
            ..Default::default()
        });
        assert_eq!(
            doc_lines(&file, &[6, 0, 2, 1]),
            [" Leading one.", " Leading two.", "", " Trailing."]
        );
        assert!(doc_lines(&file, &[6, 0]).is_empty());
        assert!(doc_lines(&FileDescriptorProto::default(), &[6, 0]).is_empty());
    }

    #[test]
    fn sanitizes_for_rustdoc() {
        assert_eq!(
            sanitize("see https://grpc.io/x."),
            " see <https://grpc.io/x.>"
        );
        assert_eq!(sanitize(" (http://a.b)"), " (<http://a.b>)");
        assert_eq!(sanitize(" <https://a.b>"), " <https://a.b>");
        assert_eq!(sanitize(" a [b] c"), " a \\[b\\] c");
        assert_eq!(sanitize(" [link](x) [r][y]"), " [link](x) [r][y]");
        assert_eq!(sanitize(" \\[kept\\]"), " \\[kept\\]");
        assert_eq!(sanitize("no space"), " no space");
        assert_eq!(sanitize("   - indented"), "    - indented");
        assert_eq!(sanitize(""), "");
        assert_eq!(sanitize(" [unclosed"), " [unclosed");
    }
}
