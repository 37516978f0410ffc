//! Sluice client SDK — reserved for the SDK issue (REST client, direct reads from the bucket
//! through `sluice_core::log::Log`, consumer groups). Nothing here yet; the crate exists so the
//! workspace has its final shape.
