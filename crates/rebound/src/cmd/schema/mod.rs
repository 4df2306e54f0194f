//! `rebound schema`: the JSON Schema of the init spec, for editors.

/// Arguments of `rebound schema`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example:\n  rebound schema > rebound-init.schema.json\n  \
# then in VS Code (YAML extension): # yaml-language-server: $schema=./rebound-init.schema.json"
)]
pub struct Args {
    /// Print on one line instead of indented.
    #[arg(long)]
    pub compact: bool,
}

/// Runs `rebound schema`.
pub fn run(args: Args) -> anyhow::Result<i32> {
    let schema = rebound_init::spec::json_schema();
    let text = if args.compact {
        serde_json::to_string(&schema)?
    } else {
        serde_json::to_string_pretty(&schema)?
    };
    crate::output::out!("{text}")?;
    Ok(crate::exit::OK)
}
