//! The `lookout` binary: a thin shell over the `lookout_server` library.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod demo;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use lookout_server::Server;
use lookout_server::config::{self, Config, Overrides};
use lookout_server::store::Store;
use std::path::PathBuf;
use std::sync::Arc;

/// The server allocates and frees many small values on several threads at once (parsed
/// JSON in the digest, request buffers); mimalloc's per-thread heaps do that with much less
/// contention and fragmentation than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Lookout: zero blind spots for autonomous trading agents.
#[derive(Debug, Parser)]
#[command(name = "lookout", version, about)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Global {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "LOOKOUT_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [env: LOOKOUT_LISTEN] [default: 127.0.0.1:9000].
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Data directory [env: LOOKOUT_DATA_DIR] [default: ./lookout-data].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL to store everything in, shared by every node pointed at it
    /// (postgres://user:password@host:5432/lookout) [env: LOOKOUT_DATABASE_URL]
    /// [default: the embedded SQLite file in the data directory].
    #[arg(long, global = true)]
    database_url: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Manage projects (works with or without a running server).
    Projects {
        #[command(subcommand)]
        command: ProjectsCommand,
    },
    /// Manage API tokens (works with or without a running server).
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Manage web UI accounts (works with or without a running server).
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Copy an embedded store (a data directory) into an empty PostgreSQL database and
    /// verify every table's row count. Stop the server first; envelopes it accepted but had
    /// not digested yet go along and are digested once a server runs on PostgreSQL.
    Migrate {
        /// The data directory of the embedded store to copy (the one holding lookout.db).
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL database to copy into (postgres://user:password@host:5432/lookout),
        /// which no server may have used yet [default: --database-url, LOOKOUT_DATABASE_URL
        /// or the configuration's database_url].
        #[arg(long)]
        to: Option<String>,
    },
    /// Run the Purple Flea sandbox: the six services on one port, with fault injection.
    Sandbox {
        /// Fault injection configuration (TOML; see the `purpleflea-sandbox` docs). Default:
        /// the production-like latency and no errors. Change it at runtime with
        /// `PUT /_admin/faults`.
        #[arg(long, env = "LOOKOUT_SANDBOX_FAULTS")]
        faults: Option<PathBuf>,
        /// Seed for the deterministic state (markets, games, ids).
        #[arg(long, env = "LOOKOUT_SANDBOX_SEED", default_value_t = 1)]
        seed: u64,
    },
    /// Run the server, the sandbox and three example agents, with a fault schedule that
    /// fires every alert preset within about two minutes. Ctrl-C stops it.
    Demo {
        /// Keep the data in a temporary directory (deleted at the end) instead of the data
        /// directory.
        #[arg(long, env = "LOOKOUT_DEMO_TEMP")]
        temp: bool,
        /// Seed of the sandbox and the agents.
        #[arg(long, env = "LOOKOUT_SANDBOX_SEED", default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Debug, Subcommand)]
enum ProjectsCommand {
    /// Create a project and print its DSN.
    Create {
        /// Project slug (a-z, 0-9, - and _).
        slug: String,
        /// Organisation slug (created if new).
        #[arg(long, default_value = "default")]
        org: String,
        /// Events per minute for the project's key (default: the server's setting).
        #[arg(long)]
        rate_limit: Option<u32>,
    },
    /// List projects with their ids and DSNs.
    List,
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Create a web UI account or change its password. The password is read from
    /// standard input (one line), never from the command line.
    SetPassword {
        /// User name.
        #[arg(long, default_value = "admin")]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokensCommand {
    /// Create an API token and print it (it is shown only once).
    Create {
        /// A name to recognise the token by.
        #[arg(long, default_value = "cli")]
        name: String,
        /// Scopes (repeat or comma-separate); default: all.
        #[arg(long = "scope", value_delimiter = ',')]
        scopes: Vec<String>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The demo prints its own story on stdout; the example agents' warnings (every failed
    // order) would drown it.
    let default_filter = match cli.command {
        Command::Demo { .. } => "warn,lookout_examples=error,http=error",
        _ => "info",
    };
    init_logging(default_filter);
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lookout: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LOOKOUT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn load_config(global: &Global) -> anyhow::Result<Config> {
    let overrides = Overrides {
        listen: global.listen.clone(),
        data_dir: global.data_dir.clone(),
        database_url: global.database_url.clone(),
    };
    Ok(config::load(global.config.as_deref(), &overrides)?)
}

fn open_store(config: &Config) -> anyhow::Result<Store> {
    if let Some(url) = &config.database_url {
        return Store::open_postgres(url).with_context(|| {
            format!(
                "cannot open the database at database_url {} (set --database-url or LOOKOUT_DATABASE_URL)",
                redact_url(url)
            )
        });
    }
    Store::open_with(&config.data_dir, config.ingest.synchronous).with_context(|| {
        format!(
            "cannot open the data directory {} (set --data-dir or LOOKOUT_DATA_DIR)",
            config.data_dir.display()
        )
    })
}

/// `url` with its password replaced by `***`, for messages.
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or_default();
                let hidden = if userinfo.contains(':') { ":***" } else { "" };
                format!("{scheme}://{user}{hidden}@{host}")
            }
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => serve(load_config(&cli.global)?),
        Command::Sandbox { faults, seed } => {
            // The sandbox is not the server: it reads no server configuration, and listens
            // on its own default port so both can run side by side.
            let listen = cli
                .global
                .listen
                .clone()
                .or_else(|| std::env::var("LOOKOUT_SANDBOX_LISTEN").ok())
                .unwrap_or_else(|| SANDBOX_LISTEN.to_owned());
            sandbox(&listen, faults.as_deref(), seed)
        }
        Command::Demo { temp, seed } => demo(load_config(&cli.global)?, temp, seed),
        Command::Migrate { from, to } => {
            let config = load_config(&cli.global)?;
            let to = to.or(config.database_url.clone()).context(
                "say which PostgreSQL database to copy into: --to postgres://user:password@host:5432/lookout (or --database-url, LOOKOUT_DATABASE_URL)",
            )?;
            migrate(&from, &to, config.ingest.synchronous)
        }
        Command::Projects { command } => {
            let config = load_config(&cli.global)?;
            let store = open_store(&config)?;
            // An address given here wins; else the one the server last started at; else the
            // default, said so.
            let explicit = cli.global.listen.is_some()
                || std::env::var_os("LOOKOUT_LISTEN").is_some()
                || config.public_url.is_some();
            let base = match store.last_base_url()? {
                Some(url) if !explicit => url,
                last => {
                    let base = config.base_url(None);
                    if last.is_none() && !explicit {
                        eprintln!(
                            "DSNs assume {base}: the server has not started on this data directory yet (pass --listen or set public_url)"
                        );
                    }
                    base
                }
            };
            match command {
                ProjectsCommand::Create {
                    slug,
                    org,
                    rate_limit,
                } => {
                    let p = store.create_project(&org, &slug, rate_limit)?;
                    println!("{}", p.dsn(&base));
                }
                ProjectsCommand::List => {
                    println!("{:<6} {:<24} {:<9} DSN", "ID", "PROJECT", "STATUS");
                    for p in store.list_projects()? {
                        println!(
                            "{:<6} {:<24} {:<9} {}",
                            p.id,
                            format!("{}/{}", p.org_slug, p.slug),
                            p.status,
                            p.dsn(&base)
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Users {
            command: UsersCommand::SetPassword { user },
        } => {
            let config = load_config(&cli.global)?;
            let store = open_store(&config)?;
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprint!("password for {user:?}: ");
            }
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            let users = store.users();
            users.set_password(&user, password, chrono_now_ms())?;
            eprintln!("password set for {user:?}; their open sessions were ended");
            Ok(())
        }
        Command::Tokens {
            command: TokensCommand::Create { name, scopes },
        } => {
            let store = open_store(&load_config(&cli.global)?)?;
            let (info, token) = store.create_token(&name, &scopes)?;
            eprintln!(
                "token {:?} created with scopes: {} (it is shown only once)",
                info.name, info.scopes
            );
            println!("{token}");
            Ok(())
        }
    }
}

/// `lookout migrate`: copy the embedded store in `from` into the PostgreSQL database at `to`,
/// printing each table's rows and a final line.
fn migrate(
    from: &std::path::Path,
    to: &str,
    synchronous: config::Synchronous,
) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    let shown = redact_url(to);
    anyhow::ensure!(
        from.join("lookout.db").is_file(),
        "no embedded store in {}: lookout.db is not there (--from names the data directory a server ran on)",
        from.display()
    );
    let source = Store::open_with(from, synchronous)
        .with_context(|| format!("cannot open the embedded store in {}", from.display()))?;
    let target = Store::open_postgres(to)
        .with_context(|| format!("cannot open the PostgreSQL database {shown}"))?;
    println!("copying {} into {shown}", from.display());
    let live = std::io::stderr().is_terminal();
    let report = lookout_server::store::copy::copy_store(&source, &target, |table, rows| {
        if live {
            eprint!("\r  {table:<24} {rows:>10}");
            let _ = std::io::stderr().flush();
        }
    });
    if live {
        eprint!("\r{:<40}\r", "");
    }
    let report = report
        .with_context(|| format!("nothing was copied from {} into {shown}", from.display()))?;
    for t in &report.tables {
        println!("  {:<24} {:>10}", t.table, t.rows);
    }
    println!(
        "  {:<24} {:>10}",
        "inbox (undigested)", report.inbox_undigested
    );
    let secs = report.elapsed.as_secs_f64();
    println!(
        "copied {} rows of {} tables in {secs:.1} s ({:.0} rows/s), every count verified; {} envelope(s) not yet digested moved to the shared inbox, to be digested by the first server on {shown}",
        report.rows(),
        report.tables.len(),
        report.rows() as f64 / secs.max(0.001),
        report.inbox_undigested,
    );
    Ok(())
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Where `lookout sandbox` listens unless told otherwise.
const SANDBOX_LISTEN: &str = "127.0.0.1:9100";

fn sandbox(listen: &str, faults: Option<&std::path::Path>, seed: u64) -> anyhow::Result<()> {
    use purpleflea_sandbox::{FaultConfig, Sandbox, SandboxConfig, Service};
    let addr: std::net::SocketAddr = listen
        .parse()
        .with_context(|| format!("invalid listen address {listen:?} (expected HOST:PORT)"))?;
    let mut config = SandboxConfig::default().seed(seed);
    if let Some(path) = faults {
        let faults = FaultConfig::load(path)
            .with_context(|| format!("cannot load the fault configuration {}", path.display()))?;
        config = config.faults(faults);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let sandbox = Sandbox::new(config)?;
        let handle = sandbox
            .serve(addr)
            .await
            .with_context(|| format!("cannot listen on {listen} (set --listen)"))?;
        println!("Purple Flea sandbox listening on {}", handle.url());
        for service in Service::ALL {
            println!("  {:<8} {}", service.name(), handle.base_url(service));
        }
        println!("  admin    {}/_admin/faults", handle.url());
        shutdown_signal().await;
        handle.shutdown().await?;
        Ok(())
    })
}

fn demo(mut config: Config, temp: bool, seed: u64) -> anyhow::Result<()> {
    use demo::{Demo, DemoOptions, Printer};
    use std::io::Write;
    let temp_dir = if temp {
        let dir = tempfile::Builder::new()
            .prefix("lookout-demo-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        config.data_dir = dir.path().to_owned();
        Some(dir)
    } else {
        None
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let print: Printer = Arc::new(|line: &str| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        });
        let listen = config.listen.clone();
        let data_dir = config.data_dir.clone();
        let mut options = DemoOptions::new(config);
        options.seed = seed;
        let demo = Demo::start(options, print.clone()).await.with_context(|| {
            format!(
                "cannot start the demo on {listen} with data in {} (set --listen, --data-dir or --temp)",
                data_dir.display()
            )
        })?;
        shutdown_signal().await;
        print("stopping the agents, the sandbox and the server");
        demo.stop().await?;
        if let Some(dir) = temp_dir {
            let _ = dir.close();
        }
        Ok(())
    })
}

fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let store = Arc::new(open_store(&config)?);
        let created = store.ensure_default_project()?;
        let listener = tokio::net::TcpListener::bind(config.listen_addr())
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (set --listen or LOOKOUT_LISTEN)",
                    config.listen
                )
            })?;
        let addr = listener.local_addr()?;
        let base = config.base_url(Some(addr));
        if let Some(p) = &created {
            println!(
                "created organisation {:?} and project {:?}",
                p.org_slug, p.slug
            );
        }
        println!("lookout listening on {base}");
        for p in store.list_projects()? {
            println!("DSN for {}/{}: {}", p.org_slug, p.slug, p.dsn(&base));
        }
        let server = Server::builder(config)
            .store(store)
            .listener(listener)
            .start()
            .await?;
        server.shutdown_on(shutdown_signal()).await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}
