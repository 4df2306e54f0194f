//! The command line (`rebound ...`, clap with rebound's value parsers:
//! durations, signals, jitters, addresses) and the targets of `rebound
//! wait` (every URL scheme), with two invariants:
//!
//! - no command line panics: it is accepted or refused with a message;
//! - a password never shows: `rebound wait` with a target URL that carries
//!   the password `s3cr3t-PW` (any scheme, user, host, port, path and
//!   query the fuzzer picks, wherever the `url` crate reads it as the
//!   password) never shows it, in an accepted target's text or in the
//!   error of a refused one.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "s3cr3t-PW";

#[derive(Debug, Arbitrary)]
enum Input {
    /// Any arguments.
    Raw(Vec<String>),
    /// `rebound wait [FLAGS] URL` with a password in the URL.
    Secret {
        scheme: u8,
        user: String,
        host: String,
        port: Option<u16>,
        path: String,
        query: String,
        flags: Vec<String>,
    },
}

const SCHEMES: [&str; 12] = [
    "tcp", "http", "https", "postgres", "postgresql", "mysql", "redis", "rediss", "grpc",
    "grpcs", "dns", "http+unix",
];

fuzz_target!(|input: Input| {
    match input {
        Input::Raw(args) => {
            let _ = rebound::fuzzing::command_line(&args);
        }
        Input::Secret {
            scheme,
            user,
            host,
            port,
            path,
            query,
            flags,
        } => {
            // The password must stand alone: text the fuzzer picks could
            // spell it elsewhere in the URL, which no redaction can hide.
            let picked = format!("{user}{host}{path}{query}{}", flags.concat());
            if picked.contains(SECRET) || picked.contains('@') {
                return;
            }
            let scheme = SCHEMES[usize::from(scheme) % SCHEMES.len()];
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let url = format!("{scheme}://{user}:{SECRET}@{host}{port}/{path}?{query}");
            // And it must be the password as a URL parser reads it (the
            // `url` crate, as rebound's clients do): a `/`, `?`, `#` or,
            // in http URLs, `\` in the user ends the authority before it.
            let is_password = url::Url::parse(&url)
                .is_ok_and(|u| u.password().is_some_and(|p| p == SECRET));
            if !is_password {
                return;
            }
            let mut args = vec!["wait".to_owned()];
            args.extend(flags);
            args.push(url.clone());
            match rebound::fuzzing::command_line(&args) {
                Ok(texts) => {
                    for text in texts {
                        assert!(!text.contains(SECRET), "{url:?} shows as {text:?}");
                    }
                }
                Err(message) => {
                    assert!(!message.contains(SECRET), "{url:?} refused as {message:?}");
                }
            }
        }
    }
});
