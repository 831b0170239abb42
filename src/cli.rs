//! The `clinic` command line.

use std::io::IsTerminal;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::Application;
use crate::config::{Config, LogFormat};
use crate::domain::identity::people;
use crate::domain::validate::Checks;
use crate::state::AppState;

#[derive(Parser)]
#[command(
    name = "clinic",
    version,
    about = "Conversational booking agent service for clinics"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (applies pending migrations first).
    Serve {
        /// Listen address; overrides CLINIC_ADDR.
        #[arg(long)]
        addr: Option<std::net::SocketAddr>,
        /// Load the demo clinics, doctors and accounts first (once).
        #[arg(long)]
        demo: bool,
    },
    /// Load the demo clinics, doctors and accounts, and print the accounts.
    DemoData,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Chat with the booking agent in the terminal (same configuration as `serve`).
    /// Type /pick N, /confirm, /decline or /quit besides plain messages.
    Chat {
        /// Sign in as this account first (booking needs it); the password is read from
        /// CLINIC_CHAT_PASSWORD or the first line of input.
        #[arg(long)]
        email: Option<String>,
        /// The zone relative days are read in, e.g. Europe/Lisbon.
        #[arg(long)]
        time_zone: Option<String>,
    },
    /// Run the patient conversations in a folder (default tests/scenarios) against the
    /// configured model through the HTTP API, on a fresh demo database, and print pass
    /// rate, fallbacks, latency and tokens. Fails when fewer than --require % pass.
    Eval {
        #[arg(long, default_value = "tests/scenarios")]
        scenarios: std::path::PathBuf,
        #[arg(long, default_value_t = 1)]
        runs: usize,
        #[arg(long, default_value_t = 100.0)]
        require: f64,
    },
    /// Print the checklist and plan the model extracts from a doctor's note (a text file;
    /// `-` reads standard input). Stores nothing.
    ExtractPlan { file: std::path::PathBuf },
    /// Create the first system admin, or make an existing account one.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "Administrator")]
        name: String,
        /// The password; read from CLINIC_ADMIN_PASSWORD when not given, and generated
        /// (and printed once) when neither is set.
        #[arg(long, env = "CLINIC_ADMIN_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
}

pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut config = Config::from_env()?;
    init_tracing(config.log_format);
    match cli.command {
        Command::Serve { addr, demo } => {
            if let Some(addr) = addr {
                config.addr = addr;
            }
            let state = AppState::build(config).await?;
            crate::demo::show_accounts_if_loaded(&state).await?;
            if demo {
                load_demo(&state).await?;
            } else if crate::domain::clinics::list(&state.db, None, None)
                .await?
                .is_empty()
            {
                // A newcomer's first run: say how to get somewhere.
                println!(
                    "No clinic has joined yet. To look around, run `clinic serve --demo` (demo clinics and accounts, \
                     listed on the home page); for a real clinic, `clinic create-admin --email you@example.org`."
                );
            }
            let app = Application::with_state(state).await?;
            tracing::info!(addr = %app.local_addr()?, "serving; API docs at /api/v1/docs");
            app.run_until_stopped().await
        }
        Command::Migrate => {
            let state = AppState::build(config).await?;
            tracing::info!(backend = state.db.backend(), "migrations applied");
            Ok(())
        }
        Command::CreateAdmin {
            email,
            name,
            password,
        } => create_admin(config, &email, &name, password).await,
        Command::DemoData => load_demo(&AppState::build(config).await?).await,
        Command::ExtractPlan { file } => {
            let note = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
            };
            let state = AppState::build(config).await?;
            let extraction = state
                .agent
                .extract_plan(&note)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("{}", serde_json::to_string_pretty(&extraction)?);
            Ok(())
        }
        Command::Chat { email, time_zone } => chat(config, email, time_zone).await,
        Command::Eval {
            scenarios,
            runs,
            require,
        } => {
            crate::eval::run(crate::eval::EvalOptions {
                scenarios,
                runs,
                require,
            })
            .await
        }
    }
}

/// A terminal conversation: one line in, the agent's reply and its buttons out.
async fn chat(
    config: Config,
    email: Option<String>,
    time_zone: Option<String>,
) -> anyhow::Result<()> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let state = AppState::build(config).await?;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let actor = match email {
        None => crate::domain::actor::Actor::Anonymous,
        Some(email) => {
            let password = match std::env::var("CLINIC_CHAT_PASSWORD") {
                Ok(p) if !p.is_empty() => p,
                _ => {
                    eprintln!("password for {email}:");
                    lines.next_line().await?.unwrap_or_default()
                }
            };
            let outcome = state
                .identity
                .login(&email, password.trim())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let crate::domain::identity::LoginOutcome::Authenticated(pair) = outcome else {
                anyhow::bail!("this account needs a second factor; use the widget or the API");
            };
            let principal = state
                .identity
                .authenticate(&pair.access_token)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            crate::domain::actor::Actor::User(principal)
        }
    };
    let agent = &state.agent;
    let mut reply = agent
        .start(&actor, true, time_zone.as_deref(), None, None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let secret = reply.session_secret.clone().unwrap_or_default();
    let session = crate::agent::ChatKey {
        id: reply.session_id,
        secret: &secret,
    };
    loop {
        print_reply(&reply);
        let Some(line) = lines.next_line().await? else {
            break;
        };
        let line = line.trim();
        let answer = match line {
            "" => continue,
            "/quit" | "/exit" => break,
            "/confirm" => agent.confirm(&actor, session).await,
            "/decline" => agent.decline(&actor, session).await,
            pick if pick.starts_with("/pick ") => {
                let n: usize = pick[6..].trim().parse().unwrap_or(0);
                let picks: Vec<_> = reply
                    .actions
                    .iter()
                    .filter(|a| a.kind == "pick_slot")
                    .collect();
                match picks.get(n.wrapping_sub(1)).and_then(|a| a.message.clone()) {
                    Some(message) => agent.message(&actor, session, &message).await,
                    None => {
                        println!("(no slot {n} on offer)");
                        continue;
                    }
                }
            }
            text => agent.message(&actor, session, text).await,
        };
        match answer {
            Ok(r) => reply = r,
            Err(e) => println!("({e})"),
        }
    }
    state.db.close().await;
    Ok(())
}

fn print_reply(reply: &crate::agent::Reply) {
    println!("[{}] {}", reply.assistant, reply.reply);
    let mut n = 0;
    for a in &reply.actions {
        match a.kind {
            "pick_slot" => {
                n += 1;
                println!("  /pick {n}  {}", a.label);
            }
            "confirm" => println!("  /confirm"),
            "decline" => println!("  /decline"),
            _ => println!("  ({})", a.label),
        }
    }
    print!("> ");
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

async fn load_demo(state: &AppState) -> anyhow::Result<()> {
    let summary = crate::demo::load(state).await?;
    if summary.already_loaded {
        println!("demo data is already loaded");
    } else {
        println!(
            "demo data loaded: {} clinics, {} doctors, {} slots",
            summary.clinics, summary.doctors, summary.slots
        );
    }
    for line in crate::demo::accounts() {
        println!("  {line}");
    }
    Ok(())
}

async fn create_admin(
    config: Config,
    email: &str,
    name: &str,
    password: Option<String>,
) -> anyhow::Result<()> {
    let mut checks = Checks::new();
    let email = checks.email("email", email);
    let name = checks.line("name", name, 1, 100);
    let generated = password.is_none();
    let password = password.unwrap_or_else(|| crate::crypto::random_token()[..20].to_owned());
    checks.password("password", &password);
    checks.finish().map_err(explain)?;
    let state = AppState::build(config).await?;
    let hash = state
        .identity
        .passwords()
        .hash(&password)
        .await
        .map_err(explain)?;
    let id = people::create_admin(&state.db, &email, &name, &hash)
        .await
        .map_err(explain)
        .context("creating the admin")?;
    println!("system admin {email} ({id}) is ready");
    if generated {
        println!("password: {password}\n(shown once; change it with a password reset)");
    }
    Ok(())
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
        LogFormat::Pretty => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}

/// A domain error as a terminal message, naming the offending fields.
fn explain(e: crate::error::Error) -> anyhow::Error {
    match e {
        crate::error::Error::Client { detail, fields, .. } if !fields.is_empty() => {
            let list: Vec<String> = fields
                .iter()
                .map(|f| format!("{} {}", f.field, f.message))
                .collect();
            anyhow::anyhow!("{detail} {}", list.join("; "))
        }
        other => anyhow::anyhow!("{other}"),
    }
}
