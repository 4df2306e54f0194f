//! The journal suite: the same cases against every backend (memory, a real
//! SQLite file, a real PostgreSQL started for this binary), then the
//! backend-specific ones (durability across reopen, schema versions,
//! concurrent migrations, four workers on PostgreSQL).

#[path = "../support/mod.rs"]
mod support;

mod breaker_cases;
mod cases;
mod postgres;
mod reconnect;
mod sqlite;
mod timeout;
mod tls;
mod wake;
mod worker;

/// Instantiates every case of `cases` for one backend.
macro_rules! backend_suite {
    ($backend:ident, $open:path) => {
        mod $backend {
            backend_suite!(@cases $open;
                record_adds_to_history_and_never_resets,
                another_workload_under_the_same_id_is_refused,
                list_filters_and_due_orders,
                claim_is_exclusive_and_an_expired_lease_hands_over,
                release_hands_a_claim_back_at_once,
                a_stopped_worker_hands_back_what_it_holds,
                renew_keeps_the_lease,
                renew_and_release_answer_the_recovery_as_stored,
                claims_due_at_the_same_time_go_in_migration_order,
                failures_rotate_targets_then_roll_back,
                history_is_bounded_and_counts_all,
                worker_retries_then_succeeds,
                worker_rolls_back_from_a_good_snapshot,
                worker_gives_up_on_a_corrupt_snapshot,
                worker_gives_up_on_an_expired_snapshot,
                worker_gives_up_past_the_recovery_timeout,
                worker_classifies_errors_and_asks_the_selector,
                worker_records_a_failed_rollback,
                cancel_ends_pending_and_running_and_refuses_finished,
                a_worker_stops_an_attempt_whose_recovery_is_cancelled,
                a_claim_takes_one_recovery_per_workload,
                a_lost_worker_is_rescued_until_the_limit,
                prune_deletes_only_finished_recoveries_older_than_the_cutoff
            );
        }
    };
    (@cases $open:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::cases::$case($open).await;
            }
        )*
    };
}

backend_suite!(memory, crate::support::Backend::Memory);
backend_suite!(sqlite_file, crate::support::Backend::Sqlite);
backend_suite!(postgresql, crate::support::Backend::Postgres);
