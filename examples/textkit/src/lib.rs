//! textkit: small text helpers, the example repository for orchestrate's quick start.

/// Counts the words in `s`, where a word is a maximal run of non-whitespace characters.
pub fn word_count(s: &str) -> usize {
    s.split_whitespace().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words() {
        assert_eq!(word_count("a bb  ccc"), 3);
        assert_eq!(word_count(""), 0);
    }
}
