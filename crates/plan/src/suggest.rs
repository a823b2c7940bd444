//! "Did you mean …?" for misspelt keys, names and references.

/// The candidate closest to `word`, if it is close enough to be a likely typo: similar by
/// Jaro-Winkler, or (for words of three letters or more) one edit away counting a swap of
/// neighbours as one edit, which Jaro-Winkler scores low on short words (`evn` → `env`).
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .filter_map(|c| {
            let similarity = strsim::jaro_winkler(word, c);
            let one_edit = word.chars().count() >= 3
                && c.chars().count() >= 3
                && strsim::osa_distance(word, c) == 1;
            (similarity >= 0.8 || one_edit).then_some((one_edit, similarity, c))
        })
        // One edit away beats merely similar; then the more similar.
        .max_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)))
        .map(|(_, _, c)| c)
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

    #[test]
    fn one_edit_on_short_words_is_a_typo() {
        let pin = ["env", "file", "prompt"];
        assert_eq!(did_you_mean("evn", pin), Some("env"));
        assert_eq!(did_you_mean("vne", pin), None);
        assert_eq!(did_you_mean("fiel", pin), Some("file"));
        assert_eq!(did_you_mean("sot", ["slot", "store"]), Some("slot"));
        assert_eq!(did_you_mean("id", ["if"]), None);
        assert_eq!(did_you_mean("key", ["env", "file", "prompt"]), None);
        assert_eq!(did_you_mean("tag", ["tags", "name", "id"]), Some("tags"));
        assert_eq!(did_you_mean("foo", ["env", "file", "prompt"]), None);
    }
}
