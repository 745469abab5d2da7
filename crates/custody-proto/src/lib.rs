//! Generated protobuf types for `custody.v1`, and with the `grpc` feature
//! its gRPC clients and servers.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    include!(concat!(env!("OUT_DIR"), "/custody.v1.rs"));

    /// The encoded `FileDescriptorSet`, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/custody_descriptor.bin"));
}

mod convert;
pub use convert::{
    decode_entry, decode_event, envelope_from_proto, envelope_to_proto, finding_to_proto,
    interval_to_proto, Entry,
};
