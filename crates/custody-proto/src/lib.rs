//! Generated protobuf and gRPC types for `custody.v1`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("custody.v1");

    /// The encoded `FileDescriptorSet`, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/custody_descriptor.bin"));
}

mod convert;
pub use convert::{
    decode_entry, decode_event, envelope_from_proto, envelope_to_proto, finding_to_proto,
    interval_to_proto, Entry,
};
