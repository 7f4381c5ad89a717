//! `funetun keys`: key management.

use crate::output::print_json;

/// Subcommands of `funetun keys`.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Generates a fresh secp256k1 key and prints `{"address","private_key"}`.
    New,
}

/// Runs `funetun keys …`.
pub fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::New => {
            let key = funetun_chain::keys::new_key();
            print_json(&serde_json::json!({
                "address": key.address(),
                "private_key": format!("0x{}", alloy_primitives::hex::encode(key.to_bytes())),
            }))
        }
    }
}
