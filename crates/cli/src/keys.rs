//! `funetun keys` (key management) and [`KeyArgs`], where every command
//! that signs gets its key: `--key-file` (the hex key, or an encrypted
//! Ethereum JSON keystore), `FUNETUN_KEY`, or `--key` on the command line.

use std::path::{Path, PathBuf};

use alloy_signer_local::PrivateKeySigner;
use anyhow::Context as _;

use crate::output::print_json;

/// The dev chains' chain id (the embedded chain's and anvil's default).
const DEV_CHAIN_ID: u64 = 31337;

/// Environment variable holding a keystore's password.
pub const PASSWORD_ENV: &str = "FUNETUN_KEY_PASSWORD";

/// Subcommands of `funetun keys`.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Generates a fresh secp256k1 key. Prints `{"address","private_key"}`,
    /// or with `--keystore DIR` writes it encrypted (password from
    /// FUNETUN_KEY_PASSWORD or --password-file) and prints
    /// `{"address","keystore"}` without the key.
    New(NewKeyArgs),
    /// Prints the address of the key given by --key-file, FUNETUN_KEY or --key.
    Address(KeyArgs),
}

/// Arguments of `funetun keys new`.
#[derive(Debug, clap::Args)]
pub struct NewKeyArgs {
    /// Write the key as an encrypted Ethereum JSON keystore into this
    /// directory (the standard format other Ethereum tools read).
    #[arg(long, value_name = "DIR")]
    keystore: Option<PathBuf>,
    /// A file whose first line is the keystore's password (default:
    /// FUNETUN_KEY_PASSWORD).
    #[arg(long, env = "FUNETUN_KEY_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
}

/// A key as `0x`-hex, as `--key` and `FUNETUN_KEY` take it.
pub fn key_hex(key: &PrivateKeySigner) -> String {
    format!("0x{}", alloy_primitives::hex::encode(key.to_bytes()))
}

/// Where a command's signing key comes from. `--key-file` wins over
/// `FUNETUN_KEY` and `--key`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KeyArgs {
    /// A file holding the private key: its hex, or an encrypted Ethereum
    /// JSON keystore (password from FUNETUN_KEY_PASSWORD or --password-file).
    #[arg(long, env = "FUNETUN_KEY_FILE", value_name = "PATH")]
    pub key_file: Option<PathBuf>,
    /// A file whose first line is the keystore's password.
    #[arg(long, env = "FUNETUN_KEY_PASSWORD_FILE", value_name = "PATH")]
    pub password_file: Option<PathBuf>,
    /// The private key (hex). On the command line it is visible to every
    /// user of this machine (`ps`): prefer --key-file or FUNETUN_KEY.
    #[arg(long, env = "FUNETUN_KEY", hide_env_values = true)]
    pub key: Option<String>,
}

impl KeyArgs {
    /// Whether any key was given.
    pub fn is_given(&self) -> bool {
        self.key_file.is_some() || self.key.is_some()
    }

    /// The signer, from the file or the hex key.
    pub fn signer(&self) -> anyhow::Result<PrivateKeySigner> {
        if let Some(path) = &self.key_file {
            return load_key_file(path, self.password_file.as_deref());
        }
        let Some(hex) = &self.key else {
            anyhow::bail!(
                "no key: pass --key-file PATH (the hex key, or an encrypted keystore from \
                 `funetun keys new --keystore DIR`), or set FUNETUN_KEY"
            );
        };
        funetun_chain::keys::parse_key(hex).context("--key / FUNETUN_KEY")
    }

    /// Warns when the key was typed on the command line (where `ps` shows
    /// it) for a chain that is not a dev chain. Asks the node its chain id
    /// once; says nothing when the node does not answer.
    pub async fn warn_if_exposed(&self, rpc_url: &str) {
        if self.key_file.is_some() || !key_on_command_line(std::env::args()) {
            return;
        }
        let asked = tokio::time::timeout(
            std::time::Duration::from_secs(3),
            funetun_chain::ledger::chain_id(rpc_url),
        )
        .await;
        if let Ok(Ok(id)) = asked
            && id != DEV_CHAIN_ID
        {
            tracing::warn!(
                chain_id = id,
                "--key on the command line is visible to every user of this machine (ps, shell \
                 history); on a real chain use --key-file (an encrypted keystore) or FUNETUN_KEY"
            );
        }
    }
}

/// Whether `--key` itself (not `--key-file`) is among the arguments.
fn key_on_command_line(mut args: impl Iterator<Item = String>) -> bool {
    args.any(|a| a == "--key" || a.starts_with("--key="))
}

/// The password of a keystore: the first line of `password_file`, else
/// FUNETUN_KEY_PASSWORD.
fn password(password_file: Option<&Path>, keystore: &Path) -> anyhow::Result<String> {
    if let Some(file) = password_file {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading the password file {}", file.display()))?;
        return Ok(text.lines().next().unwrap_or_default().to_string());
    }
    std::env::var(PASSWORD_ENV).map_err(|_| {
        anyhow::anyhow!(
            "{} is an encrypted keystore: set {PASSWORD_ENV} or pass --password-file PATH",
            keystore.display()
        )
    })
}

/// Reads a key file: a JSON keystore (decrypted with its password) or the
/// hex key on its first line.
pub fn load_key_file(
    path: &Path,
    password_file: Option<&Path>,
) -> anyhow::Result<PrivateKeySigner> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the key file {}", path.display()))?;
    if text.trim_start().starts_with('{') {
        let password = password(password_file, path)?;
        return PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| {
            anyhow::anyhow!(
                "could not decrypt the keystore {}: {e} (a wrong password reads as a MAC \
                 mismatch)",
                path.display()
            )
        });
    }
    funetun_chain::keys::parse_key(text.lines().next().unwrap_or_default())
        .with_context(|| format!("the key file {} holds no hex private key", path.display()))
}

/// Runs `funetun keys …`.
pub fn run(cmd: KeysCommand) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::New(args) => {
            let key = funetun_chain::keys::new_key();
            let Some(dir) = args.keystore else {
                return print_json(&serde_json::json!({
                    "address": key.address(),
                    "private_key": key_hex(&key),
                }));
            };
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let password = password(args.password_file.as_deref(), &dir)?;
            anyhow::ensure!(
                !password.is_empty(),
                "the keystore password is empty: choose one"
            );
            let name = format!("{:x}.json", key.address());
            PrivateKeySigner::encrypt_keystore(
                &dir,
                &mut rand08::thread_rng(),
                key.to_bytes(),
                password,
                Some(&name),
            )
            .map_err(|e| anyhow::anyhow!("writing the keystore in {}: {e}", dir.display()))?;
            let path = dir.join(name);
            eprintln!(
                "wrote the key of {} encrypted to {}; use it with --key-file {}",
                key.address(),
                path.display(),
                path.display()
            );
            print_json(&serde_json::json!({ "address": key.address(), "keystore": path }))
        }
        KeysCommand::Address(args) => {
            let key = args.signer()?;
            print_json(&serde_json::json!({ "address": key.address() }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn only_key_itself_counts_as_typed() {
        assert!(key_on_command_line(args(&[
            "funetun", "trainer", "--key", "0x1"
        ])));
        assert!(key_on_command_line(args(&[
            "funetun",
            "trainer",
            "--key=0x1"
        ])));
        assert!(!key_on_command_line(args(&[
            "funetun",
            "trainer",
            "--key-file",
            "k"
        ])));
        assert!(!key_on_command_line(args(&["funetun", "trainer"])));
    }

    #[test]
    fn key_files_hold_hex_or_an_encrypted_keystore() {
        let dir = tempfile::tempdir().unwrap();
        let key = funetun_chain::keys::new_key();
        let hex = dir.path().join("key.hex");
        std::fs::write(
            &hex,
            format!("0x{}\n", alloy_primitives::hex::encode(key.to_bytes())),
        )
        .unwrap();
        assert_eq!(load_key_file(&hex, None).unwrap().address(), key.address());

        let password = dir.path().join("password");
        std::fs::write(&password, "correct horse\n").unwrap();
        PrivateKeySigner::encrypt_keystore(
            dir.path(),
            &mut rand08::thread_rng(),
            key.to_bytes(),
            "correct horse",
            Some("ks.json"),
        )
        .unwrap();
        let ks = dir.path().join("ks.json");
        assert_eq!(
            load_key_file(&ks, Some(&password)).unwrap().address(),
            key.address()
        );
        std::fs::write(&password, "wrong\n").unwrap();
        let wrong = load_key_file(&ks, Some(&password)).unwrap_err().to_string();
        assert!(wrong.contains("could not decrypt the keystore"), "{wrong}");

        let junk = dir.path().join("junk");
        std::fs::write(&junk, "not a key\n").unwrap();
        let err = format!("{:#}", load_key_file(&junk, None).unwrap_err());
        assert!(err.contains("holds no hex private key"), "{err}");
        let none = KeyArgs::default().signer().unwrap_err().to_string();
        assert!(none.contains("--key-file"), "{none}");
    }
}
