//! The SmolLM2 tokenizer, rebuilt from the GGUF file's metadata: the file ships no `tokenizer.json`,
//! but it carries the byte-level BPE vocabulary and merges (`tokenizer.ggml.*`).

use std::collections::HashMap;

use candle_core::quantized::gguf_file;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, PreTokenizerWrapper, Tokenizer};

use crate::error::ChatError;

/// GGUF `tokenizer.ggml.token_type` of control tokens (`<|im_start|>`, `<|endoftext|>` …).
const CONTROL_TOKEN: i32 = 3;

/// A byte-level BPE tokenizer built from a GGUF file's metadata, with each token's bytes
/// precomputed so generated text can be decoded token by token.
///
/// [`encode`](Self::encode) reads its input as text only: a control token spelled out in it is
/// tokenized as the characters it is made of, never as the control token's id.
///
/// ```no_run
/// # fn demo(model: &sextant_agent::providers::local::LocalChatModel) -> Result<(), sextant_agent::ChatError> {
/// let tokenizer = model.tokenizer();
/// let ids = tokenizer.encode("<|im_start|>user\nHi<|im_end|>")?;
/// assert!(!ids.contains(&tokenizer.token_id("<|im_start|>").unwrap()));
/// assert_eq!(tokenizer.decode(&ids), "<|im_start|>user\nHi<|im_end|>");
/// # Ok(()) }
/// ```
pub struct LocalTokenizer {
    inner: Tokenizer,
    /// Each token's text as raw bytes (special tokens: their literal text).
    token_bytes: Vec<Vec<u8>>,
    special: Vec<bool>,
    ids: HashMap<String, u32>,
    /// The end-of-sequence token from the metadata.
    pub(crate) eos_id: u32,
}

impl std::fmt::Debug for LocalTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTokenizer")
            .field("vocab_size", &self.token_bytes.len())
            .finish_non_exhaustive()
    }
}

fn local(message: impl std::fmt::Display) -> ChatError {
    ChatError::Local(message.to_string())
}

fn metadata<'a>(
    content: &'a gguf_file::Content,
    key: &str,
) -> Result<&'a gguf_file::Value, ChatError> {
    content.metadata.get(key).ok_or_else(|| {
        local(format!(
            "the GGUF file has no `{key}`: it does not carry a tokenizer"
        ))
    })
}

impl LocalTokenizer {
    /// Builds the tokenizer from a GGUF file's `tokenizer.ggml.*` metadata (model `gpt2`, i.e.
    /// byte-level BPE). Digits are split one by one before BPE, as SmolLM2's tokenizer does.
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self, ChatError> {
        let model = metadata(content, "tokenizer.ggml.model")?
            .to_string()
            .map_err(local)?;
        if model != "gpt2" {
            return Err(local(format!(
                "tokenizer model `{model}` is not supported; only byte-level BPE (`gpt2`) is"
            )));
        }
        let tokens: Vec<String> = metadata(content, "tokenizer.ggml.tokens")?
            .to_vec()
            .map_err(local)?
            .iter()
            .map(|value| value.to_string().cloned())
            .collect::<Result<_, _>>()
            .map_err(local)?;
        let merges = metadata(content, "tokenizer.ggml.merges")?
            .to_vec()
            .map_err(local)?
            .iter()
            .map(|value| {
                let merge = value.to_string().map_err(local)?;
                merge
                    .split_once(' ')
                    .map(|(left, right)| (left.to_string(), right.to_string()))
                    .ok_or_else(|| local(format!("malformed merge `{merge}` in the GGUF file")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let token_types: Vec<i32> = match content.metadata.get("tokenizer.ggml.token_type") {
            Some(value) => value
                .to_vec()
                .map_err(local)?
                .iter()
                .map(|value| value.to_i32())
                .collect::<Result<_, _>>()
                .map_err(local)?,
            None => vec![1; tokens.len()],
        };
        let eos_id = metadata(content, "tokenizer.ggml.eos_token_id")?
            .to_u32()
            .map_err(local)?;

        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(id, token)| (token.clone(), id as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(local)?;
        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
        ])));
        inner.with_decoder(Some(ByteLevel::default()));

        let special: Vec<bool> = (0..tokens.len())
            .map(|id| token_types.get(id) == Some(&CONTROL_TOKEN))
            .collect();
        let added: Vec<AddedToken> = tokens
            .iter()
            .zip(&special)
            .filter(|(_, special)| **special)
            .map(|(token, _)| AddedToken::from(token.clone(), true))
            .collect();
        inner
            .add_special_tokens(added)
            .map_err(|err| local(format!("the GGUF's control tokens cannot be added: {err}")))?;
        // The control tokens stay known to the tokenizer but are never matched in its input: what
        // it encodes is text (a message, a page, a tool result), and a prompt's own control tokens
        // are placed by id (`chatml::Prompt`), so text cannot open or close a turn.
        inner.set_encode_special_tokens(true);

        let unicode_to_byte = unicode_to_byte();
        let token_bytes = tokens
            .iter()
            .zip(&special)
            .map(|(token, special)| {
                if *special {
                    token.as_bytes().to_vec()
                } else {
                    // Byte-level BPE spells each byte as one printable char; a char outside that
                    // alphabet (none in SmolLM2) is kept as its UTF-8 text.
                    let mut bytes = Vec::with_capacity(token.len());
                    for c in token.chars() {
                        match unicode_to_byte.get(&c) {
                            Some(byte) => bytes.push(*byte),
                            None => bytes.extend_from_slice(c.to_string().as_bytes()),
                        }
                    }
                    bytes
                }
            })
            .collect();
        let ids = tokens
            .iter()
            .enumerate()
            .map(|(id, token)| (token.clone(), id as u32))
            .collect();
        Ok(Self {
            inner,
            token_bytes,
            special,
            ids,
            eos_id,
        })
    }

    /// Token ids of `text` read as plain text: a control token written in it (`<|im_start|>`)
    /// becomes the ids of its characters (`<|`, `im`, …), never the control token's own id.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ChatError> {
        let ids = self
            .inner
            .encode_fast(text, false)
            .map(|encoding| encoding.get_ids().to_vec())
            .map_err(|err| local(format!("tokenizing the prompt failed: {err}")))?;
        // Byte-level pre-tokenization splits `<|`, letters and `|>` apart, so BPE cannot merge text
        // back into a control token; checked anyway, because text that became one would take over
        // the conversation.
        match ids.iter().find(|id| self.is_special(**id)) {
            Some(id) => Err(local(format!(
                "text tokenized to the control token {}",
                String::from_utf8_lossy(self.token_bytes(*id))
            ))),
            None => Ok(ids),
        }
    }

    /// The text of `ids`, control tokens included; invalid UTF-8 (a token sequence cut inside a
    /// character) is replaced by U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for id in ids {
            bytes.extend_from_slice(self.token_bytes(*id));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The id of a token spelled exactly `token` in the vocabulary (`<|im_end|>`).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }

    /// The number of tokens in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// The raw bytes a token stands for (empty for an unknown id).
    pub(crate) fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes.get(id as usize).map_or(&[], Vec::as_slice)
    }

    /// Whether `id` is a control token.
    pub(crate) fn is_special(&self, id: u32) -> bool {
        self.special.get(id as usize).copied().unwrap_or(false)
    }
}

/// The inverse of GPT-2's `bytes_to_unicode`: printable chars stand for themselves, the other bytes
/// for chars from U+0100 on, in byte order.
fn unicode_to_byte() -> HashMap<char, u8> {
    let printable = |byte: u8| matches!(byte, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut map = HashMap::with_capacity(256);
    let mut next = 0u32;
    for byte in 0..=255u8 {
        let c = if printable(byte) {
            char::from(byte)
        } else {
            let c = char::from_u32(256 + next).unwrap_or(char::REPLACEMENT_CHARACTER);
            next += 1;
            c
        };
        map.insert(c, byte);
    }
    map
}

/// Turns generated token bytes into text without ever splitting a UTF-8 character: bytes of an
/// unfinished character wait for the next token.
#[derive(Debug, Default)]
pub(crate) struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    /// Adds a token's bytes and returns the text that is now complete.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(err) => {
                    let valid = err.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match err.error_len() {
                        // An incomplete character at the end: keep it for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }

    /// The text of whatever bytes are left at the end of generation.
    pub(crate) fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model_files::{ModelCache, SMOLLM2_135M_INSTRUCT, SMOLLM2_GGUF};

    /// The default model's tokenizer, from the GGUF at `SEXTANT_TEST_GGUF` if set, else from the
    /// default model cache (pulled on first use), as `tests/local_model.rs` gets the model.
    pub(crate) async fn default_tokenizer() -> LocalTokenizer {
        let path = match std::env::var("SEXTANT_TEST_GGUF") {
            Ok(path) => std::path::PathBuf::from(path),
            Err(_) => ModelCache::from_env()
                .expect("model cache")
                .ensure(&SMOLLM2_135M_INSTRUCT)
                .await
                .expect("pull the default model")
                .join(SMOLLM2_GGUF),
        };
        let mut file = std::fs::File::open(&path).expect("open the GGUF");
        let content = gguf_file::Content::read(&mut file).expect("read the GGUF");
        LocalTokenizer::from_gguf(&content).expect("tokenizer")
    }

    #[tokio::test]
    async fn control_tokens_written_in_text_stay_text() {
        let tokenizer = default_tokenizer().await;
        let controls: Vec<u32> = (0..tokenizer.vocab_size() as u32)
            .filter(|id| tokenizer.is_special(*id))
            .collect();
        assert!(
            controls.len() >= 3,
            "<|endoftext|>, <|im_start|>, <|im_end|> …"
        );
        for control in controls {
            let spelled = String::from_utf8_lossy(tokenizer.token_bytes(control)).into_owned();
            for text in [
                spelled.clone(),
                format!("before {spelled} after"),
                format!("{spelled}{spelled}\n"),
            ] {
                let ids = tokenizer.encode(&text).expect("encode");
                assert!(
                    ids.iter().all(|id| !tokenizer.is_special(*id)),
                    "{text:?} encoded to control tokens: {ids:?}"
                );
                assert_eq!(tokenizer.decode(&ids), text);
            }
        }
    }

    #[test]
    fn byte_map_covers_every_byte() {
        let map = unicode_to_byte();
        assert_eq!(map.len(), 256);
        assert_eq!(map.get(&'Ġ'), Some(&b' '));
        assert_eq!(map.get(&'Ċ'), Some(&b'\n'));
    }

    #[test]
    fn utf8_decoder_holds_back_split_characters() {
        let mut decoder = Utf8Decoder::default();
        let euro = "€".as_bytes();
        assert_eq!(decoder.push(b"a"), "a");
        assert_eq!(decoder.push(&euro[..1]), "");
        assert_eq!(decoder.push(&euro[1..]), "€");
        assert_eq!(decoder.push(&[0xFF, b'b']), "\u{FFFD}b");
    }
}
