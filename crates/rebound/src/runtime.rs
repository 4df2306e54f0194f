//! The tokio runtime the commands run on.

/// Builds the tokio runtime commands use.
pub fn build() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}
