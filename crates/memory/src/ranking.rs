//! Ranking the candidates of a vector search: Maximal Marginal Relevance (Carbonell & Goldstein,
//! 1998) trades relevance to the query against similarity to what is already chosen, so five
//! near-copies of one paragraph do not crowd out the second-best source.

use crate::vector_store::ScoredPoint;

/// Picks `k` of `candidates` (each with its unit vector; its `score` is the cosine similarity to
/// the query) by MMR with trade-off `lambda` (1 = relevance only, 0 = diversity only). Returns the
/// chosen candidates in the order chosen, each with its MMR score. Candidates without a vector
/// count as dissimilar to everything.
pub fn mmr(candidates: Vec<ScoredPoint>, k: usize, lambda: f32) -> Vec<(ScoredPoint, f32)> {
    let lambda = lambda.clamp(0.0, 1.0);
    let mut remaining = candidates;
    let mut chosen: Vec<(ScoredPoint, f32)> = Vec::with_capacity(k.min(remaining.len()));
    while chosen.len() < k && !remaining.is_empty() {
        let (best, score) = remaining
            .iter()
            .enumerate()
            .map(|(i, candidate)| {
                let redundancy = chosen
                    .iter()
                    .map(|(picked, _)| similarity(candidate, picked))
                    .fold(0.0f32, f32::max);
                (i, lambda * candidate.score - (1.0 - lambda) * redundancy)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .expect("remaining is not empty");
        chosen.push((remaining.remove(best), score));
    }
    chosen
}

fn similarity(a: &ScoredPoint, b: &ScoredPoint) -> f32 {
    match (&a.vector, &b.vector) {
        (Some(x), Some(y)) => x.iter().zip(y).map(|(p, q)| p * q).sum(),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(id: u64, score: f32, vector: [f32; 2]) -> ScoredPoint {
        let norm = (vector[0] * vector[0] + vector[1] * vector[1]).sqrt();
        ScoredPoint {
            id,
            score,
            payload: Default::default(),
            vector: Some(vec![vector[0] / norm, vector[1] / norm]),
        }
    }

    #[test]
    fn a_near_duplicate_loses_to_a_different_relevant_candidate() {
        let candidates = vec![
            point(1, 0.90, [1.0, 0.0]),
            point(2, 0.89, [1.0, 0.01]), // a copy of 1
            point(3, 0.70, [0.0, 1.0]),
        ];
        let ids: Vec<u64> = mmr(candidates.clone(), 2, 0.5)
            .iter()
            .map(|(p, _)| p.id)
            .collect();
        assert_eq!(ids, vec![1, 3]);
        // Relevance only keeps the similarity order.
        let ids: Vec<u64> = mmr(candidates, 2, 1.0).iter().map(|(p, _)| p.id).collect();
        assert_eq!(ids, vec![1, 2]);
    }

    #[test]
    fn takes_at_most_what_exists() {
        assert!(mmr(Vec::new(), 3, 0.5).is_empty());
        assert_eq!(mmr(vec![point(1, 0.5, [1.0, 0.0])], 3, 0.5).len(), 1);
    }
}
