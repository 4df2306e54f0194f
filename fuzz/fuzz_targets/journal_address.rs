//! Journal addresses (`--journal`, `REBOUND_JOURNAL`): parsing never
//! panics; a parsed address prints back to one that parses the same; a
//! password in a PostgreSQL URL never shows in its display form.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rebound_recovery::JournalAddress;

#[derive(Debug, Arbitrary)]
enum Input<'a> {
    /// Any text, as a user may type it.
    Raw(&'a str),
    /// A PostgreSQL URL with user information, to check redaction:
    /// `postgres://USER:PASSWORD@REST`.
    Postgres {
        user: &'a str,
        password: &'a str,
        rest: &'a str,
    },
}

fuzz_target!(|input: Input<'_>| {
    match input {
        Input::Raw(text) => {
            let Ok(address) = text.parse::<JournalAddress>() else {
                return;
            };
            let shown = address.to_string();
            match &address {
                JournalAddress::Postgres(_) => {
                    // Redacted: may not parse back to the same URL, but it
                    // must still be read as a PostgreSQL address.
                    assert!(matches!(
                        shown.parse::<JournalAddress>(),
                        Ok(JournalAddress::Postgres(_))
                    ));
                }
                _ => assert_eq!(shown.parse::<JournalAddress>().ok(), Some(address)),
            }
        }
        Input::Postgres {
            user,
            password,
            rest,
        } => {
            // The display form is the URL with the password (and more,
            // when in doubt) replaced by `***`. A password that the rest
            // of that form holds anyway, or one with a `*` (which the
            // redaction writes), proves nothing: skip those.
            let skeleton = format!("postgres://{user}:***@{rest}");
            if password.is_empty() || password.contains('*') || skeleton.contains(password) {
                return;
            }
            let url = format!("postgres://{user}:{password}@{rest}");
            if let Ok(address) = url.parse::<JournalAddress>() {
                let shown = address.to_string();
                assert!(!shown.contains(password), "{shown:?} shows the password");
            }
        }
    }
});
