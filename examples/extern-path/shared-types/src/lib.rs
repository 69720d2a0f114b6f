//! Message types other crates use through `extern_path` (see ../README.md).

/// The `shared` protobuf packages.
pub mod shared {
    /// `shared.v1`.
    pub mod v1 {
        #![allow(missing_docs)]
        include!(concat!(env!("OUT_DIR"), "/shared.v1.rs"));

        impl Money {
            /// `units` whole units of `currency`.
            pub fn new(currency: &str, units: i64) -> Money {
                Money {
                    currency: currency.to_owned(),
                    units,
                }
            }
        }
    }
}
