#[test]
fn word_count_ignores_surrounding_space() {
    assert_eq!(textkit::word_count("  one two  "), 2);
}
