//! The state file of `rebound retry --breaker-file`: reading any text
//! never panics, and a state read is written back as text that reads as
//! the same state and is written back unchanged (times are kept to the
//! millisecond, so the first write may round them; the second may not
//! change anything).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(written) = rebound::fuzzing::breaker_state(text) {
        let again = rebound::fuzzing::breaker_state(&written)
            .unwrap_or_else(|e| panic!("the written state is refused: {e}\n{written}"));
        assert_eq!(again, written, "written from {text:?}");
    }
});
