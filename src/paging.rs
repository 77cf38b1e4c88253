//! Newest-first paging over in-memory records keyed by a creation sequence number: the one
//! implementation behind every list endpoint's `page_size` / `page_token`. Knows no HTTP.

/// Returns at most `page_size` items with a sequence below `before` (all when `None`), newest
/// first, and the token for the next page (`None` on the last page).
pub fn newest_first<T>(
    items: impl Iterator<Item = (u64, T)>,
    page_size: usize,
    before: Option<u64>,
) -> (Vec<T>, Option<String>) {
    let mut keyed: Vec<(u64, T)> = items
        .filter(|(seq, _)| before.is_none_or(|t| *seq < t))
        .collect();
    keyed.sort_unstable_by_key(|(seq, _)| std::cmp::Reverse(*seq));
    let more = keyed.len() > page_size;
    keyed.truncate(page_size);
    let token = more
        .then(|| keyed.last().map(|(seq, _)| seq.to_string()))
        .flatten();
    (keyed.into_iter().map(|(_, item)| item).collect(), token)
}

#[cfg(test)]
mod tests {
    use super::newest_first;

    #[test]
    fn pages_newest_first() {
        let items = || (1..=5u64).map(|s| (s, s * 10));
        let (page, token) = newest_first(items(), 2, None);
        assert_eq!((page, token.as_deref()), (vec![50, 40], Some("4")));
        let (page, token) = newest_first(items(), 2, Some(4));
        assert_eq!((page, token.as_deref()), (vec![30, 20], Some("2")));
        let (page, token) = newest_first(items(), 2, Some(2));
        assert_eq!((page, token), (vec![10], None));
        let (page, token) = newest_first(items(), 5, None);
        assert_eq!((page.len(), token), (5, None));
    }
}
