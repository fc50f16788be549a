//! Embeds the built-in search corpus (`configs/corpus/*.md`) so the offline `web_search` backend
//! needs no files at run time, and a document added to the folder is picked up without a code
//! change.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let corpus = manifest.join("../../configs/corpus");
    println!("cargo:rerun-if-changed={}", corpus.display());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&corpus)
        .unwrap_or_else(|e| panic!("reading {}: {e}", corpus.display()))
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    files.sort();
    let mut code = String::from("&[\n");
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_name().expect("a file").to_string_lossy();
        let absolute = path.canonicalize().expect("an existing file");
        writeln!(
            code,
            "    ({name:?}, include_str!({:?})),",
            absolute.display()
        )
        .expect("to a String");
    }
    code.push(']');
    let out =
        PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("builtin_corpus.rs");
    std::fs::write(&out, code).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}
