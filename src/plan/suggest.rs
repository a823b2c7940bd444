//! "Did you mean …?" for misspelt keys, names and references.

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, c)| *score >= 0.8 && *c != word)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_misses_only() {
        assert_eq!(did_you_mean("slots", ["slot", "store"]), Some("slot"));
        assert_eq!(did_you_mean("ep1l", ["ep11", "cca"]), Some("ep11"));
        assert_eq!(did_you_mean("zzz", ["slot", "store"]), None);
    }
}
