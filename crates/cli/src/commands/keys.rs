//! `sextant keys new`: a random API key for `[serve.auth]`, kept only as its digest.

use std::io::Write;

use anyhow::Context;
use sextant_server::new_key;

use crate::cli::{KeyRole, KeysCommand};

pub fn keys(command: KeysCommand) -> anyhow::Result<()> {
    let KeysCommand::New { user, roles, file } = command;
    if !sextant_server::valid_user_id(&user) {
        anyhow::bail!("--user `{user}` must be 1-128 letters, digits or - _ . : @");
    }
    let roles = if roles.is_empty() {
        vec![KeyRole::User]
    } else {
        roles
    };
    let roles: Vec<String> = roles
        .iter()
        .map(|role| {
            format!(
                "\"{}\"",
                match role {
                    KeyRole::User => "user",
                    KeyRole::Service => "service",
                    KeyRole::Admin => "admin",
                }
            )
        })
        .collect();
    let (key, digest) = new_key();
    let entry = format!(
        "[[keys]]\nuser = \"{user}\"\nroles = [{}]\nsha256 = \"{digest}\"\n",
        roles.join(", ")
    );
    match file {
        Some(path) => {
            let mut out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("opening the keys file {}", path.display()))?;
            writeln!(out, "\n{entry}")
                .with_context(|| format!("writing the keys file {}", path.display()))?;
            eprintln!(
                "added the key of `{user}` to {} (only its digest); give the client this key, it is shown once:",
                path.display()
            );
            println!("{key}");
        }
        None => {
            eprintln!(
                "the key of `{user}` (shown once; give it to the client) and its [[keys]] entry for [serve.auth] keys_file:"
            );
            println!("{key}\n\n{entry}");
        }
    }
    Ok(())
}
