//! VoIPBIN's credential in the query string: `?token=<t>`, percent-decoded (`+` is a space, as
//! in a form). Parsing only: the token is compared by [`super::Tokens`], and must not be logged.

/// The first `token` parameter of a raw query string, decoded; `None` when absent or empty.
pub fn token(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "token")
        .map(|(_, value)| value.into_owned())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::token;

    #[test]
    fn the_token_parameter_is_found_and_decoded() {
        assert_eq!(token("token=abc").as_deref(), Some("abc"));
        assert_eq!(
            token("page_size=2&token=a%2Bb%20c").as_deref(),
            Some("a+b c")
        );
        assert_eq!(token("token=a+b").as_deref(), Some("a b"));
        assert_eq!(token("token=first&token=second").as_deref(), Some("first"));
        assert_eq!(token("tokens=x&xtoken=y"), None);
        assert_eq!(token("token="), None);
        assert_eq!(token(""), None);
    }
}
