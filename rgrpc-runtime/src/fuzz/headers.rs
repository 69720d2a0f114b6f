//! Targets of the header decoders: metadata (`-bin` base64 and the received map) and
//! the status trailers (`grpc-status`, `grpc-message`, `grpc-status-details-bin`).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::metadata::{self, Metadata, is_reserved};
use crate::status::{self, Code, Status};

/// Parses an input as a header block: one `name:value` per line, lines whose name or
/// value is no valid HTTP header skipped (h2 rejects those before we see them).
fn header_map(data: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        {
            map.append(name, value);
        }
    }
    map
}

/// Metadata. Input: a `-bin` value, and the same bytes as a header block (see
/// `header_map`) and as key/value pairs for the setters.
pub fn metadata(data: &[u8]) {
    // -bin values: padded or unpadded standard base64 (PROTOCOL-HTTP2.md). Decoding is
    // exact: re-encoding what decoded gives the input without its padding.
    if let Ok(decoded) = metadata::decode_bin(data) {
        let unpadded = data
            .strip_suffix(b"==")
            .or_else(|| data.strip_suffix(b"="))
            .unwrap_or(data);
        assert_eq!(metadata::encode_bin(&decoded).as_bytes(), unpadded);
    }
    // And the other way: any bytes survive encode then decode, unpadded (what we send)
    // and padded (what other peers may send).
    let encoded = metadata::encode_bin(data);
    assert!(!encoded.contains('='), "senders emit unpadded base64");
    assert_eq!(metadata::decode_bin(encoded.as_bytes()).unwrap(), data);
    let padded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, data);
    assert_eq!(metadata::decode_bin(padded.as_bytes()).unwrap(), data);

    // A received header block: the reserved headers are dropped, every other value is
    // kept in order, and both constructors agree.
    let map = header_map(data);
    let from_headers = Metadata::from_headers(&map);
    let from_received = Metadata::from_received(map.clone());
    for md in [&from_headers, &from_received] {
        assert!(md.keys().all(|k| !is_reserved(k)), "{md:?}");
        let kept = map.keys().filter(|k| !is_reserved(k.as_str())).count();
        assert_eq!(md.keys().count(), kept);
        for name in map.keys().filter(|k| !is_reserved(k.as_str())) {
            let want: Vec<&str> = map
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            assert_eq!(md.get_all(name.as_str()), want);
            if name.as_str().ends_with("-bin") {
                let want: Vec<Vec<u8>> = map
                    .get_all(name)
                    .iter()
                    .filter_map(|v| metadata::decode_bin(v.as_bytes()).ok())
                    .collect();
                assert_eq!(md.get_all_bin(name.as_str()), want);
            }
        }
    }
    // (Key order is not kept by removal, and carries no meaning; each key's values, in
    // order, were compared above.)
    let mut a: Vec<&str> = from_headers.keys().collect();
    let mut b: Vec<&str> = from_received.keys().collect();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b);

    // The setters accept exactly the keys and values gRPC allows.
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        let (key, value) = line.split_once(':').unwrap_or((line, ""));
        let key_ok = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b"_-.".contains(&b))
            && !is_reserved(key)
            // gRFC A6: the one grpc- key a handler sets itself.
            && (!key.starts_with("grpc-") || key == "grpc-retry-pushback-ms");
        let value_ok = value.bytes().all(|b| (0x20..=0x7e).contains(&b));
        let bin = key.ends_with("-bin");
        let mut md = Metadata::new();
        assert_eq!(
            md.append(key, value).is_ok(),
            key_ok && value_ok && !bin,
            "append({key:?}, {value:?})"
        );
        if key_ok && value_ok && !bin {
            assert_eq!(md.get(key), Some(value));
        }
        let mut md = Metadata::new();
        assert_eq!(
            md.append_bin(key, value.as_bytes()).is_ok(),
            key_ok && bin,
            "append_bin({key:?})"
        );
        if key_ok && bin {
            assert_eq!(md.get_bin(key).as_deref(), Some(value.as_bytes()));
            let mut map = HeaderMap::new();
            md.write_headers(&mut map);
            assert_eq!(
                Metadata::from_headers(&map).get_bin(key).as_deref(),
                Some(value.as_bytes())
            );
        }
    }
}

/// The status trailers. Input: the bytes as a `grpc-status` value, as a `grpc-message`
/// value, as a header block, and as a message and details to round-trip.
pub fn status(data: &[u8]) {
    // grpc-status: a decimal integer; 0-16 are the codes, other values UNKNOWN
    // (statuscodes.md); not a number is `None`.
    let model = (!data.is_empty() && data.len() <= 10 && data.iter().all(u8::is_ascii_digit))
        .then(|| std::str::from_utf8(data).ok()?.parse::<u64>().ok())
        .flatten()
        .filter(|&n| n <= i32::MAX as u64)
        .map(|n| Code::from_i32(n as i32));
    assert_eq!(Code::from_header(data), model);

    // grpc-message: decoding never fails; what we encode is a valid header value and
    // decodes back to the message.
    let _ = status::decode_message(data);
    let message = String::from_utf8_lossy(data).into_owned();
    let encoded = status::encode_message(&message);
    assert!(
        encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)),
        "{encoded:?}"
    );
    assert_eq!(status::decode_message(encoded.as_bytes()), message);

    // Trailers as received: the code by the model above, INTERNAL without grpc-status,
    // UNKNOWN when malformed; the metadata only on a failure, without reserved keys.
    let map = header_map(data);
    let got = Status::from_trailers(&map);
    match map.get("grpc-status") {
        None => assert_eq!(got.code(), Code::Internal),
        Some(value) => match Code::from_header(value.as_bytes()) {
            None => assert_eq!(got.code(), Code::Unknown),
            Some(code) => {
                assert_eq!(got.code(), code);
                let want = map
                    .get("grpc-message")
                    .map(|m| status::decode_message(m.as_bytes()))
                    .unwrap_or_default();
                assert_eq!(got.message(), want);
                let details = map
                    .get("grpc-status-details-bin")
                    .and_then(|d| metadata::decode_bin(d.as_bytes()).ok())
                    .unwrap_or_default();
                assert_eq!(&got.details()[..], &details[..]);
                if code == Code::Ok {
                    assert!(got.metadata().is_empty());
                } else {
                    assert!(got.metadata().keys().all(|k| !is_reserved(k)));
                }
            }
        },
    }

    // A status we send comes back as it was.
    let code = Code::from_i32(i32::from(data.first().copied().unwrap_or(0) % 17));
    let sent = Status::with_details(code, message.clone(), Bytes::copy_from_slice(data));
    let mut trailers = HeaderMap::new();
    sent.write_trailers(&mut trailers);
    let back = Status::from_trailers(&trailers);
    assert_eq!(back.code(), code);
    assert_eq!(back.message(), message);
    assert_eq!(&back.details()[..], data);
}
