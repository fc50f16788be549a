//! Quantized matrix products for the forward pass ([`crate::model`]).
//!
//! Weights stay in the GGUF's own blocks of 32: Q4_1 (4-bit values with a scale and a minimum, what
//! SmolLM2's layers ship as) and Q8_0 (8-bit values with a scale; its embedding table, and what any
//! other block type is converted to at load). Activations are quantized to 8 bits per block of 32
//! (Q8_1, which also keeps the block's scaled sum for Q4_1's minimum) once per product and shared by
//! every weight row, as llama.cpp does. On x86-64 with AVX2, FMA and F16C (checked at run time) the
//! dot products run on 256-bit integer lanes; elsewhere a portable loop computes the same sums.
//!
//! Written here rather than taken from candle: candle 0.11 has no SIMD Q4_1 product (so its engine
//! converted every layer to Q8_0 and moved 1.7 times the bytes per token) and allocates a tensor per
//! operation, which for a 135M model costs more than the arithmetic. See `docs/local-model.md`.
//!
//! `pub(crate)` throughout: the crate's interface is [`crate::Llama`].

use half::f16;
use rayon::prelude::*;

/// Values per quantization block (every block type here).
pub(crate) const BLOCK: usize = 32;

/// 32 weights as 4-bit values `q` in `0..16`, each meaning `d * q + m`. Byte `j` of `qs` holds value
/// `j` in its low nibble and value `j + 16` in its high nibble (GGUF's layout, read as is).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct BlockQ4_1 {
    d: f16,
    m: f16,
    qs: [u8; BLOCK / 2],
}

/// 32 weights as 8-bit values `q`, each meaning `d * q` (GGUF's layout).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(crate) struct BlockQ8_0 {
    d: f16,
    qs: [i8; BLOCK],
}

/// 32 activations as 8-bit values `q` meaning `d * q`; `s` is `d * Σq`, the block's sum, which a
/// Q4_1 product needs for the weights' minimum.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
pub(crate) struct BlockQ8_1 {
    d: f32,
    s: f32,
    qs: [i8; BLOCK],
}

/// A weight matrix of `rows` × `cols` in quantized blocks, row-major.
#[derive(Debug, Clone)]
pub(crate) struct QMatrix {
    rows: usize,
    cols: usize,
    blocks: Blocks,
}

#[derive(Debug, Clone)]
enum Blocks {
    Q4_1(Vec<BlockQ4_1>),
    Q8_0(Vec<BlockQ8_0>),
}

/// Which block type a GGUF tensor's bytes hold (the ones read without conversion).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Q4_1,
    Q8_0,
}

impl Format {
    fn block_bytes(self) -> usize {
        match self {
            Self::Q4_1 => 4 + BLOCK / 2,
            Self::Q8_0 => 2 + BLOCK,
        }
    }
}

impl QMatrix {
    /// Reads GGUF block bytes as they are on disk. The error says what does not fit.
    pub(crate) fn from_gguf_bytes(
        format: Format,
        rows: usize,
        cols: usize,
        bytes: &[u8],
    ) -> Result<Self, String> {
        if !cols.is_multiple_of(BLOCK) {
            return Err(format!(
                "rows of {cols} values are not whole blocks of {BLOCK}"
            ));
        }
        let expected = rows * cols / BLOCK * format.block_bytes();
        if bytes.len() != expected {
            return Err(format!(
                "{rows}x{cols} {format:?} needs {expected} bytes, the file holds {}",
                bytes.len()
            ));
        }
        let chunks = bytes.chunks_exact(format.block_bytes());
        let half_at = |bytes: &[u8], at: usize| f16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let blocks = match format {
            Format::Q4_1 => Blocks::Q4_1(
                chunks
                    .map(|block| BlockQ4_1 {
                        d: half_at(block, 0),
                        m: half_at(block, 2),
                        qs: block[4..].try_into().expect("16 bytes of values"),
                    })
                    .collect(),
            ),
            Format::Q8_0 => Blocks::Q8_0(
                chunks
                    .map(|block| BlockQ8_0 {
                        d: half_at(block, 0),
                        qs: std::array::from_fn(|i| block[2 + i] as i8),
                    })
                    .collect(),
            ),
        };
        Ok(Self { rows, cols, blocks })
    }

    /// Quantizes `values` (`rows` × `cols`, row-major) to Q8_0, for weights stored in a block type
    /// the products here do not read.
    pub(crate) fn quantize_q8_0(rows: usize, cols: usize, values: &[f32]) -> Result<Self, String> {
        if !cols.is_multiple_of(BLOCK) || values.len() != rows * cols {
            return Err(format!(
                "{} values cannot be {rows} rows of {cols} in blocks of {BLOCK}",
                values.len()
            ));
        }
        let blocks = values
            .chunks_exact(BLOCK)
            .map(|chunk| {
                let amax = chunk.iter().fold(0f32, |max, value| max.max(value.abs()));
                let d = amax / 127.0;
                let inverse = if d == 0.0 { 0.0 } else { 1.0 / d };
                BlockQ8_0 {
                    d: f16::from_f32(d),
                    qs: std::array::from_fn(|i| (chunk[i] * inverse).round() as i8),
                }
            })
            .collect();
        Ok(Self {
            rows,
            cols,
            blocks: Blocks::Q8_0(blocks),
        })
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    pub(crate) fn cols(&self) -> usize {
        self.cols
    }

    /// Row `row` as floats (an embedding lookup).
    pub(crate) fn row_into(&self, row: usize, out: &mut [f32]) {
        let per_row = self.cols / BLOCK;
        let range = row * per_row..(row + 1) * per_row;
        match &self.blocks {
            Blocks::Q4_1(blocks) => {
                for (block, out) in blocks[range].iter().zip(out.chunks_exact_mut(BLOCK)) {
                    let (d, m) = (block.d.to_f32(), block.m.to_f32());
                    for (j, &byte) in block.qs.iter().enumerate() {
                        out[j] = d * f32::from(byte & 0x0F) + m;
                        out[j + BLOCK / 2] = d * f32::from(byte >> 4) + m;
                    }
                }
            }
            Blocks::Q8_0(blocks) => {
                for (block, out) in blocks[range].iter().zip(out.chunks_exact_mut(BLOCK)) {
                    let d = block.d.to_f32();
                    for (out, &q) in out.iter_mut().zip(&block.qs) {
                        *out = d * f32::from(q);
                    }
                }
            }
        }
    }

    /// `out[t * rows + r] = row r · input t` for each of the `tokens` inputs (each `cols / 32`
    /// blocks, see [`quantize_q8_1`]). Rows are shared out over the current rayon pool; every input
    /// is multiplied by a row while the row is in cache.
    pub(crate) fn matmul(&self, input: &[BlockQ8_1], tokens: usize, out: &mut [f32]) {
        let per_row = self.cols / BLOCK;
        debug_assert_eq!(input.len(), tokens * per_row);
        debug_assert_eq!(out.len(), tokens * self.rows);
        // Rows per task: enough work to be worth a hand-off.
        let min_rows = (4096 / tokens.max(1)).clamp(1, 256);
        let dot = dot_fn(&self.blocks);
        if tokens == 1 {
            out.par_iter_mut()
                .enumerate()
                .with_min_len(min_rows)
                .for_each(|(row, out)| *out = dot(&self.blocks, row * per_row, input));
            return;
        }
        // Row-major by weight row while computing (so tasks own whole rows), then transposed.
        let mut by_row = vec![0f32; tokens * self.rows];
        by_row
            .par_chunks_mut(tokens)
            .enumerate()
            .with_min_len(min_rows)
            .for_each(|(row, row_out)| {
                for (token, out) in row_out.iter_mut().enumerate() {
                    let input = &input[token * per_row..(token + 1) * per_row];
                    *out = dot(&self.blocks, row * per_row, input);
                }
            });
        for (row, values) in by_row.chunks_exact(tokens).enumerate() {
            for (token, value) in values.iter().enumerate() {
                out[token * self.rows + row] = *value;
            }
        }
    }
}

/// A dot product of the weight row starting at block `start` with one input's blocks.
type DotFn = fn(&Blocks, usize, &[BlockQ8_1]) -> f32;

fn dot_fn(blocks: &Blocks) -> DotFn {
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        return match blocks {
            Blocks::Q4_1(_) => avx2::dot_q4_1,
            Blocks::Q8_0(_) => avx2::dot_q8_0,
        };
    }
    match blocks {
        Blocks::Q4_1(_) => portable::dot_q4_1,
        Blocks::Q8_0(_) => portable::dot_q8_0,
    }
}

/// Quantizes `x` (whole blocks of 32) into `out`, one [`BlockQ8_1`] per 32 values.
pub(crate) fn quantize_q8_1(x: &[f32], out: &mut [BlockQ8_1]) {
    debug_assert_eq!(x.len(), out.len() * BLOCK);
    for (chunk, block) in x.chunks_exact(BLOCK).zip(out.iter_mut()) {
        let amax = chunk.iter().fold(0f32, |max, value| max.max(value.abs()));
        let d = amax / 127.0;
        let inverse = if d == 0.0 { 0.0 } else { 1.0 / d };
        let mut sum = 0i32;
        for (q, value) in block.qs.iter_mut().zip(chunk) {
            *q = (value * inverse).round() as i8;
            sum += i32::from(*q);
        }
        // Scales rounded to half precision, as llama.cpp stores them (its `quantize_row_q8_1`).
        block.d = f16::from_f32(d).to_f32();
        block.s = f16::from_f32(d * sum as f32).to_f32();
    }
}

/// The same sums as [`avx2`], one value at a time.
mod portable {
    use super::{BLOCK, BlockQ8_1, Blocks};

    pub(super) fn dot_q4_1(blocks: &Blocks, start: usize, y: &[BlockQ8_1]) -> f32 {
        let Blocks::Q4_1(blocks) = blocks else {
            unreachable!("dot_q4_1 is chosen for Q4_1 blocks")
        };
        blocks[start..start + y.len()]
            .iter()
            .zip(y)
            .map(|(x, y)| {
                let sum: i32 =
                    x.qs.iter()
                        .enumerate()
                        .map(|(j, &byte)| {
                            i32::from(byte & 0x0F) * i32::from(y.qs[j])
                                + i32::from(byte >> 4) * i32::from(y.qs[j + BLOCK / 2])
                        })
                        .sum();
                x.d.to_f32() * y.d * sum as f32 + x.m.to_f32() * y.s
            })
            .sum()
    }

    pub(super) fn dot_q8_0(blocks: &Blocks, start: usize, y: &[BlockQ8_1]) -> f32 {
        let Blocks::Q8_0(blocks) = blocks else {
            unreachable!("dot_q8_0 is chosen for Q8_0 blocks")
        };
        blocks[start..start + y.len()]
            .iter()
            .zip(y)
            .map(|(x, y)| {
                let sum: i32 =
                    x.qs.iter()
                        .zip(&y.qs)
                        .map(|(&a, &b)| i32::from(a) * i32::from(b))
                        .sum();
                x.d.to_f32() * y.d * sum as f32
            })
            .sum()
    }
}

/// AVX2 products: each block's 32 products summed as unsigned × signed bytes into 16-bit pairs
/// (`maddubs`), then into eight 32-bit lanes, scaled and accumulated in floats.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BlockQ4_1, BlockQ8_0, BlockQ8_1, Blocks};

    pub(super) fn available() -> bool {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    }

    pub(super) fn dot_q4_1(blocks: &Blocks, start: usize, y: &[BlockQ8_1]) -> f32 {
        let Blocks::Q4_1(blocks) = blocks else {
            unreachable!("dot_q4_1 is chosen for Q4_1 blocks")
        };
        let x = &blocks[start..start + y.len()];
        // SAFETY: `dot_fn` picks this function only when `available()` saw AVX2, FMA and F16C.
        unsafe { q4_1(x, y) }
    }

    pub(super) fn dot_q8_0(blocks: &Blocks, start: usize, y: &[BlockQ8_1]) -> f32 {
        let Blocks::Q8_0(blocks) = blocks else {
            unreachable!("dot_q8_0 is chosen for Q8_0 blocks")
        };
        let x = &blocks[start..start + y.len()];
        // SAFETY: as above.
        unsafe { q8_0(x, y) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn q4_1(x: &[BlockQ4_1], y: &[BlockQ8_1]) -> f32 {
        let low = _mm_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        let mut minimums = 0f32;
        for (x, y) in x.iter().zip(y) {
            // SAFETY: `qs` are 16 and 32 bytes; unaligned loads read exactly them.
            let (packed, qy) = unsafe {
                (
                    _mm_loadu_si128(x.qs.as_ptr().cast()),
                    _mm256_loadu_si256(y.qs.as_ptr().cast()),
                )
            };
            let lo = _mm_and_si128(packed, low);
            let hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
            let qx = _mm256_set_m128i(hi, lo);
            let sums = _mm256_madd_epi16(_mm256_maddubs_epi16(qx, qy), ones);
            // The block's scale and minimum, both halves converted in one instruction.
            let bits = u32::from(x.d.to_bits()) | (u32::from(x.m.to_bits()) << 16);
            let dm = _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32));
            let d = _mm_cvtss_f32(dm) * y.d;
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sums), acc);
            minimums += _mm_cvtss_f32(_mm_movehdup_ps(dm)) * y.s;
        }
        horizontal_sum(acc) + minimums
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn q8_0(x: &[BlockQ8_0], y: &[BlockQ8_1]) -> f32 {
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        for (x, y) in x.iter().zip(y) {
            // SAFETY: both `qs` are 32 bytes; unaligned loads read exactly them.
            let (qx, qy) = unsafe {
                (
                    _mm256_loadu_si256(x.qs.as_ptr().cast()),
                    _mm256_loadu_si256(y.qs.as_ptr().cast()),
                )
            };
            // Signed × signed as |x| × (y with x's sign), which maddubs takes.
            let sums = _mm256_madd_epi16(
                _mm256_maddubs_epi16(_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qy, qx)),
                ones,
            );
            let d = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(x.d.to_bits())))) * y.d;
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sums), acc);
        }
        horizontal_sum(acc)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn horizontal_sum(v: __m256) -> f32 {
        let pair = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let pair = _mm_add_ps(pair, _mm_movehl_ps(pair, pair));
        _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn random_q4_1_bytes(rng: &mut StdRng, blocks: usize) -> Vec<u8> {
        (0..blocks)
            .flat_map(|_| {
                let mut block = Vec::with_capacity(20);
                block.extend(f16::from_f32(rng.random_range(0.001..0.05)).to_le_bytes());
                block.extend(f16::from_f32(rng.random_range(-0.4..0.0)).to_le_bytes());
                block.extend((0..16).map(|_| rng.random::<u8>()));
                block
            })
            .collect()
    }

    fn dense(matrix: &QMatrix) -> Vec<f32> {
        let mut values = vec![0f32; matrix.rows * matrix.cols];
        for (row, out) in values.chunks_exact_mut(matrix.cols).enumerate() {
            matrix.row_into(row, out);
        }
        values
    }

    /// Each product against the float product of the dequantized weights and the unquantized input:
    /// close, not equal, because the input is rounded to 8 bits per block.
    fn assert_matches_float_product(matrix: &QMatrix, rng: &mut StdRng, tokens: usize) {
        let cols = matrix.cols;
        let input: Vec<f32> = (0..tokens * cols)
            .map(|_| rng.random_range(-2.0..2.0))
            .collect();
        let mut quantized = vec![BlockQ8_1::default(); tokens * cols / BLOCK];
        quantize_q8_1(&input, &mut quantized);
        let mut out = vec![0f32; tokens * matrix.rows];
        matrix.matmul(&quantized, tokens, &mut out);
        let weights = dense(matrix);
        for token in 0..tokens {
            for row in 0..matrix.rows {
                let expected: f32 = weights[row * cols..(row + 1) * cols]
                    .iter()
                    .zip(&input[token * cols..(token + 1) * cols])
                    .map(|(w, x)| w * x)
                    .sum();
                let got = out[token * matrix.rows + row];
                let scale: f32 = weights[row * cols..(row + 1) * cols]
                    .iter()
                    .map(|w| w.abs())
                    .sum::<f32>()
                    .max(1.0);
                assert!(
                    (got - expected).abs() <= 0.02 * scale,
                    "row {row} token {token}: {got} vs {expected} (scale {scale})"
                );
                // The portable loop computes the same integer sums: equal up to float rounding.
                let per_row = cols / BLOCK;
                let input = &quantized[token * per_row..(token + 1) * per_row];
                let portable = match matrix.blocks {
                    Blocks::Q4_1(_) => portable::dot_q4_1(&matrix.blocks, row * per_row, input),
                    Blocks::Q8_0(_) => portable::dot_q8_0(&matrix.blocks, row * per_row, input),
                };
                assert!(
                    (got - portable).abs() <= 1e-4 * scale,
                    "row {row} token {token}: {got} vs portable {portable}"
                );
            }
        }
    }

    #[test]
    fn q4_1_products_match_the_dequantized_weights() {
        let mut rng = StdRng::seed_from_u64(1);
        let (rows, cols) = (37, 576);
        let bytes = random_q4_1_bytes(&mut rng, rows * cols / BLOCK);
        let matrix = QMatrix::from_gguf_bytes(Format::Q4_1, rows, cols, &bytes).unwrap();
        assert_matches_float_product(&matrix, &mut rng, 1);
        assert_matches_float_product(&matrix, &mut rng, 5);
    }

    #[test]
    fn q8_0_products_match_the_dequantized_weights() {
        let mut rng = StdRng::seed_from_u64(2);
        let (rows, cols) = (29, 192);
        let values: Vec<f32> = (0..rows * cols)
            .map(|_| rng.random_range(-0.3..0.3))
            .collect();
        let matrix = QMatrix::quantize_q8_0(rows, cols, &values).unwrap();
        // Quantizing kept each weight within half a step of its value.
        for (got, value) in dense(&matrix).iter().zip(&values) {
            assert!((got - value).abs() <= 0.3 / 127.0, "{got} vs {value}");
        }
        assert_matches_float_product(&matrix, &mut rng, 1);
        assert_matches_float_product(&matrix, &mut rng, 3);
    }

    #[test]
    fn block_bytes_that_do_not_fit_the_shape_are_refused() {
        let err = QMatrix::from_gguf_bytes(Format::Q4_1, 2, 64, &[0; 79]).unwrap_err();
        assert!(err.contains("needs 80 bytes, the file holds 79"), "{err}");
        let err = QMatrix::from_gguf_bytes(Format::Q8_0, 2, 48, &[0; 68]).unwrap_err();
        assert!(err.contains("not whole blocks of 32"), "{err}");
    }
}
