//! What tests read out of a verification message's text: the code, and the confirmation link.

/// The first word of `text` that is exactly six ASCII digits, surrounding punctuation aside:
/// `123456` in "Your verification code is 123456.". Digits inside a longer word, such as a link
/// or a date, do not count.
pub fn verification_code(text: &str) -> Option<&str> {
    text.split_whitespace()
        .map(|word| word.trim_matches(|c: char| c.is_ascii_punctuation()))
        .find(|word| word.len() == 6 && word.bytes().all(|b| b.is_ascii_digit()))
}

/// The first `http://…/verify/…` (or `https://…`) URL in `text`: from its scheme to the next
/// whitespace, angle bracket or quote, without trailing sentence punctuation.
pub fn verification_link(text: &str) -> Option<&str> {
    let mut rest = text;
    while let Some(start) = rest.find("http") {
        let candidate = &rest[start..];
        let end = candidate
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\''))
            .unwrap_or(candidate.len());
        let url = candidate[..end].trim_end_matches(['.', ',', ';', ':', '!', '?', ')']);
        let after_scheme = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        if let Some(after_scheme) = after_scheme
            && let Some(slash) = after_scheme.find('/')
            && slash > 0
            && after_scheme[slash..].starts_with("/verify/")
            && after_scheme.len() > slash + "/verify/".len()
        {
            return Some(url);
        }
        rest = &candidate["http".len()..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "Hello 张三,\n\
        \n\
        Your verification code is 042917.\n\
        It expires at 2026-12-01 22:15 UTC.\n\
        \n\
        Type the code where you were asked for it, or confirm by opening this link:\n\
        http://127.0.0.1:41234/verify/Zm9v123456YmFy.c2ln\n\
        \n\
        If you did not expect this message, ignore it.\n";

    #[test]
    fn the_code_is_the_first_six_digit_word_leading_zero_kept() {
        assert_eq!(verification_code(BODY), Some("042917"));
        assert_eq!(
            verification_code(
                "Your contactd verification code is 123456. It expires at 22:15 UTC."
            ),
            Some("123456")
        );
    }

    #[test]
    fn digits_in_links_dates_and_longer_numbers_are_no_code() {
        assert_eq!(
            verification_code("see http://h/verify/123456 on 2026-12-01, ref 1234567"),
            None
        );
        assert_eq!(verification_code("12345 is too short"), None);
    }

    #[test]
    fn the_link_is_the_first_verify_url() {
        assert_eq!(
            verification_link(BODY),
            Some("http://127.0.0.1:41234/verify/Zm9v123456YmFy.c2ln")
        );
        assert_eq!(
            verification_link(
                "not http://example.com/other nor http:///verify/x, but \
                 <https://contacts.example.com/verify/abc>."
            ),
            Some("https://contacts.example.com/verify/abc")
        );
        assert_eq!(
            verification_link("open http://h/verify/t."),
            Some("http://h/verify/t")
        );
    }

    #[test]
    fn a_text_without_a_verify_url_has_no_link() {
        assert_eq!(verification_link("http://h/verify/ and http://h/x"), None);
        assert_eq!(verification_link(""), None);
    }
}
