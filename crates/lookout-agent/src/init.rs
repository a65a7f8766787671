//! [`Options`], [`init`] and the [`Guard`] it returns; the [`tracing_layer`].

use std::fmt;
use std::process::Command;
use std::sync::{Arc, Once};

use sentry::protocol::{Event, Level, User};
use sentry::{ClientInitGuard, ClientOptions, Scope, TransportFactory};
use tracing::Subscriber;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::registry::LookupSpan;

use crate::deferred::{AgentIntegration, Shared};
use crate::filter::{Decision, NoiseFilter, tags};
use crate::scrub::scrub_event;
use crate::state::{StateProvider, StateSlot};
use crate::transport::{Counters, QueuedTransportFactory};

/// The `platform` tag set on every event.
pub const PLATFORM: &str = "purple_flea";

/// Environment variables read for the DSN, in order.
pub const DSN_ENV: [&str; 2] = ["LOOKOUT_DSN", "SENTRY_DSN"];
/// Environment variables read for the release, in order.
pub const RELEASE_ENV: [&str; 2] = ["LOOKOUT_RELEASE", "SENTRY_RELEASE"];
/// Environment variables read for the environment, in order.
pub const ENVIRONMENT_ENV: [&str; 2] = ["LOOKOUT_ENVIRONMENT", "SENTRY_ENVIRONMENT"];

/// How the release is chosen when none is given explicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReleaseSource {
    /// `LOOKOUT_RELEASE`, else `SENTRY_RELEASE`, else git (the default).
    Auto,
    /// This exact release.
    Explicit(String),
    /// `<name>@<short sha>` from `git rev-parse --short HEAD` in the working directory;
    /// where that fails (no repository, a repository without commits, a binary run outside
    /// its checkout), `LOOKOUT_RELEASE`, else `SENTRY_RELEASE`, else the fallback release
    /// ([`Options::release_fallback`]), with a warning logged once.
    Git {
        /// The release name before the `@`.
        name: String,
    },
    /// The value of this environment variable.
    Env(String),
    /// No release (release health and session tracking need one).
    None,
}

/// Everything [`init`] needs; build with [`Options::new`] and the builder methods.
#[must_use = "pass the options to lookout_agent::init"]
#[non_exhaustive]
pub struct Options {
    dsn: Option<String>,
    agent_id: String,
    strategy: Option<String>,
    environment: Option<String>,
    release: ReleaseSource,
    release_fallback: Option<String>,
    traces_sample_rate: f32,
    filter: NoiseFilter,
    state: StateSlot,
    counters: Counters,
    queue_capacity: usize,
    install_subscriber: bool,
    transport: Option<Arc<dyn TransportFactory>>,
    debug: bool,
    #[cfg(feature = "profiling")]
    profiles_sample_rate: f32,
    #[cfg(feature = "profiling")]
    profiling_frequency: u32,
    on_trading_change: Vec<crate::control::Callback>,
    unreachable: crate::control::Unreachable,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Options");
        debug
            .field("dsn", &self.dsn.as_ref().map(|_| "<set>"))
            .field("agent_id", &self.agent_id)
            .field("strategy", &self.strategy)
            .field("environment", &self.environment)
            .field("release", &self.release)
            .field("traces_sample_rate", &self.traces_sample_rate)
            .field("filter", &self.filter)
            .field("queue_capacity", &self.queue_capacity)
            .field("install_subscriber", &self.install_subscriber);
        #[cfg(feature = "profiling")]
        debug
            .field("profiles_sample_rate", &self.profiles_sample_rate)
            .field("profiling_frequency", &self.profiling_frequency);
        debug.finish_non_exhaustive()
    }
}

impl Options {
    /// Options for the agent with this id. The DSN defaults to `LOOKOUT_DSN`, then
    /// `SENTRY_DSN`; without one the library is a no-op.
    pub fn new(agent_id: impl Into<String>) -> Self {
        Self {
            dsn: None,
            agent_id: agent_id.into(),
            strategy: None,
            environment: None,
            release: ReleaseSource::Auto,
            release_fallback: None,
            traces_sample_rate: 1.0,
            filter: NoiseFilter::default(),
            state: StateSlot::default(),
            counters: Counters::default(),
            queue_capacity: 30,
            install_subscriber: false,
            transport: None,
            debug: false,
            #[cfg(feature = "profiling")]
            profiles_sample_rate: 0.0,
            #[cfg(feature = "profiling")]
            profiling_frequency: crate::profiling::DEFAULT_FREQUENCY_HZ,
            on_trading_change: Vec::new(),
            unreachable: crate::control::Unreachable::default(),
        }
    }

    /// Call `callback` on every change of the agent's trading state (the kill switch,
    /// [`crate::control`]): paused by the server, resumed, or paused by the
    /// unreachable-server policy. Runs on the control channel's thread; keep it short.
    pub fn on_trading_change(
        mut self,
        callback: impl Fn(&crate::control::TradingState) + Send + Sync + 'static,
    ) -> Self {
        self.on_trading_change.push(Arc::new(callback));
        self
    }

    /// What the agent does when its server cannot be reached (default: keep trading and
    /// record the outage; see [`crate::control::Unreachable`]).
    pub fn when_unreachable(mut self, policy: crate::control::Unreachable) -> Self {
        self.unreachable = policy;
        self
    }

    /// The DSN, e.g. `http://<key>@127.0.0.1:9000/1`.
    pub fn dsn(mut self, dsn: impl Into<String>) -> Self {
        self.dsn = Some(dsn.into());
        self
    }

    /// The strategy name (tag `strategy`).
    pub fn strategy(mut self, strategy: impl Into<String>) -> Self {
        self.strategy = Some(strategy.into());
        self
    }

    /// The environment (default `LOOKOUT_ENVIRONMENT`, then `SENTRY_ENVIRONMENT`, then
    /// `production`/`development` by build type).
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// An explicit release.
    pub fn release(mut self, release: impl Into<String>) -> Self {
        self.release = ReleaseSource::Explicit(release.into());
        self
    }

    /// Take the release from git at startup, as `<name>@<short sha>`. Where git gives none
    /// (see [`ReleaseSource::Git`]), the release comes from `LOOKOUT_RELEASE` /
    /// `SENTRY_RELEASE`, else from [`Options::release_fallback`].
    pub fn release_from_git(mut self, name: impl Into<String>) -> Self {
        self.release = ReleaseSource::Git { name: name.into() };
        self
    }

    /// The release to use when the release source finds none (git without a commit, no
    /// environment variable), typically [`crate_release!()`](crate::crate_release), the
    /// agent crate's `name@version`. Without it such an agent has no release, hence no
    /// session and no release health.
    pub fn release_fallback(mut self, release: impl Into<String>) -> Self {
        self.release_fallback = Some(release.into());
        self
    }

    /// Take the release from this environment variable.
    pub fn release_from_env(mut self, var: impl Into<String>) -> Self {
        self.release = ReleaseSource::Env(var.into());
        self
    }

    /// How the release is chosen ([`ReleaseSource`]).
    pub fn release_source(mut self, source: ReleaseSource) -> Self {
        self.release = source;
        self
    }

    /// The share of order pipelines and spans sent as transactions (default 1.0).
    pub fn traces_sample_rate(mut self, rate: f32) -> Self {
        self.traces_sample_rate = rate;
        self
    }

    /// The share of sampled order pipelines that are also profiled (default 0: none), like
    /// `traces_sample_rate`: a profiled pipeline's transaction is sent with a CPU profile of
    /// the process while it ran, in Sentry's profile format ([`crate::profiling`]). Only
    /// with the `profiling` cargo feature. The first call with a rate above 0 in the process
    /// starts and stops the profiler once, off any pipeline (~0.2 s, loading debug info).
    #[cfg(feature = "profiling")]
    pub fn profiles_sample_rate(mut self, rate: f32) -> Self {
        self.profiles_sample_rate = rate;
        self
    }

    /// How many samples a second of CPU time the profiler takes (default
    /// [`crate::profiling::DEFAULT_FREQUENCY_HZ`], 101; 1 to 1000). The kernel's timer tick
    /// bounds the real rate (often 250 Hz). Only with the `profiling` cargo feature.
    #[cfg(feature = "profiling")]
    pub fn profiling_frequency(mut self, hz: u32) -> Self {
        self.profiling_frequency = hz;
        self
    }

    /// The noise filter and escalation rules ([`NoiseFilter`]).
    pub fn noise_filter(mut self, filter: NoiseFilter) -> Self {
        self.filter = filter;
        self
    }

    /// The provider of the trading state attached to every event sent.
    pub fn state_provider(self, provider: impl StateProvider) -> Self {
        self.state.set(Some(Arc::new(provider)));
        self
    }

    /// The number of envelopes waiting to be sent before new ones are dropped (default 30).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Also install a default `tracing` subscriber (a registry with [`tracing_layer`] and an
    /// `fmt` layer filtered by `RUST_LOG`, default `info`). Off by default: most agents add
    /// [`tracing_layer`] to their own subscriber.
    pub fn install_default_subscriber(mut self, yes: bool) -> Self {
        self.install_subscriber = yes;
        self
    }

    /// Send through this transport instead of HTTP (it still sits behind the bounded queue
    /// and the scrubber). Used by tests, e.g. with `sentry::test::TestTransport`.
    pub fn transport(mut self, factory: impl TransportFactory + 'static) -> Self {
        self.transport = Some(Arc::new(factory));
        self
    }

    /// Turn on `sentry`'s debug output.
    pub fn debug(mut self, yes: bool) -> Self {
        self.debug = yes;
        self
    }

    /// The counters of dropped and escalated events, shared with the client these options
    /// build.
    pub fn counters(&self) -> Counters {
        self.counters.clone()
    }

    /// The agent id.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// The release these options resolve to (reads the environment and runs git as
    /// configured).
    pub fn resolved_release(&self) -> Option<String> {
        resolve_release(
            &self.release,
            self.release_fallback.as_deref(),
            &first_env,
            &git_short_sha,
        )
    }

    /// The DSN these options resolve to (explicit, else `LOOKOUT_DSN`, else `SENTRY_DSN`).
    pub fn resolved_dsn(&self) -> Option<String> {
        self.dsn
            .clone()
            .or_else(|| first_env(&DSN_ENV))
            .filter(|dsn| !dsn.trim().is_empty())
    }

    /// Set the agent's tags (`agent_id`, `strategy`, `platform`) and user on a scope.
    /// [`init`] does this on the main hub; `before_send` adds them to any event that lacks
    /// them, so events from other hubs carry them too.
    pub fn apply_to_scope(&self, scope: &mut Scope) {
        scope.set_tag("agent_id", &self.agent_id);
        if let Some(strategy) = &self.strategy {
            scope.set_tag("strategy", strategy);
        }
        scope.set_tag("platform", PLATFORM);
        scope.set_user(Some(agent_user(&self.agent_id)));
    }

    /// The `sentry` client options: `before_send` with the noise filter, escalation, trading
    /// state and scrubbing; the bounded, scrubbing transport; sample rate, release,
    /// environment. [`init`] uses them; tests can pass them to
    /// `sentry::test::with_captured_envelopes_options` (which swaps in its own transport).
    pub fn client_options(&self) -> ClientOptions {
        let filter = self.filter.clone();
        let state = self.state.clone();
        let counters = self.counters.clone();
        let agent_id = self.agent_id.clone();
        let strategy = self.strategy.clone();
        #[cfg_attr(not(feature = "profiling"), allow(unused_mut))]
        let mut shared = Shared::new(self.agent_id.clone());
        #[cfg(feature = "profiling")]
        {
            shared.profiling = Some(crate::profiling::Profiling::new(
                self.profiles_sample_rate,
                self.profiling_frequency,
                self.counters.clone(),
            ));
        }
        let shared = Arc::new(shared);
        // The kill switch follows the DSN's server (not when a test swapped the transport).
        if self.transport.is_none()
            && let Some(dsn) = self.resolved_dsn()
            && let Ok(mut plan) = shared.control_plan.lock()
        {
            *plan = Some(crate::control::Plan {
                dsn,
                agent_id: self.agent_id.clone(),
                policy: self.unreachable,
                callbacks: self.on_trading_change.clone(),
            });
        }
        let before_send = move |mut event: Event<'static>| {
            match filter.decide(&event) {
                Decision::Drop(_) => {
                    counters.add_filtered();
                    return None;
                }
                Decision::Escalate => {
                    event.level = Level::Fatal;
                    event
                        .tags
                        .insert(tags::ESCALATED.to_owned(), "true".to_owned());
                    counters.add_escalated();
                }
                Decision::Keep => {}
            }
            add_agent_tags(&mut event, &agent_id, strategy.as_deref());
            state.attach(&mut event);
            scrub_event(&mut event);
            Some(event)
        };
        let inner: Arc<dyn TransportFactory> = self
            .transport
            .clone()
            .unwrap_or_else(|| Arc::new(sentry::transports::DefaultTransportFactory));
        let mut options = ClientOptions::new()
            .traces_sample_rate(self.traces_sample_rate)
            .add_integration(AgentIntegration {
                shared: Arc::clone(&shared),
            })
            .before_send(before_send)
            .transport(QueuedTransportFactory {
                inner,
                counters: self.counters.clone(),
                capacity: self.queue_capacity,
                shared,
            })
            .maybe_release(self.resolved_release())
            .auto_session_tracking(false)
            .debug(self.debug);
        if let Some(env) = self
            .environment
            .clone()
            .or_else(|| first_env(&ENVIRONMENT_ENV))
        {
            options = options.environment(env);
        }
        if let Some(dsn) = self.resolved_dsn() {
            options = options.dsn(&dsn);
        }
        options
    }
}

impl Options {
    /// A hub of its own for this agent: a client built from these options and a scope with
    /// the agent's tags and user. For several agents in one process, run each agent's work
    /// in its hub (`sentry::Hub::run(hub, || …)`, or `future.bind_hub(hub)` under tokio).
    /// Unlike [`init`], this installs no panic hook and binds nothing globally; flush with
    /// `hub.client()`.
    pub fn hub(&self) -> Arc<sentry::Hub> {
        let client = Arc::new(sentry::Client::from(self.client_options()));
        let mut scope = Scope::default();
        self.apply_to_scope(&mut scope);
        Arc::new(sentry::Hub::new(Some(client), Arc::new(scope)))
    }
}

fn agent_user(agent_id: &str) -> User {
    User {
        id: Some(agent_id.to_owned()),
        username: Some(format!("agent-{agent_id}")),
        ..Default::default()
    }
}

fn add_agent_tags(event: &mut Event<'static>, agent_id: &str, strategy: Option<&str>) {
    event
        .tags
        .entry("agent_id".to_owned())
        .or_insert_with(|| agent_id.to_owned());
    if let Some(strategy) = strategy {
        event
            .tags
            .entry("strategy".to_owned())
            .or_insert_with(|| strategy.to_owned());
    }
    event
        .tags
        .entry("platform".to_owned())
        .or_insert_with(|| PLATFORM.to_owned());
    if event.user.is_none() {
        event.user = Some(agent_user(agent_id));
    }
}

fn first_env(vars: &[&str]) -> Option<String> {
    vars.iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.trim().is_empty()))
}

fn git_short_sha() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let sha = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!sha.is_empty()).then_some(sha)
}

/// The release `source` names, reading the environment with `env` and git with `git`.
fn resolve_release(
    source: &ReleaseSource,
    fallback: Option<&str>,
    env: &dyn Fn(&[&str]) -> Option<String>,
    git: &dyn Fn() -> Option<String>,
) -> Option<String> {
    let release = match source {
        ReleaseSource::Explicit(release) => return Some(release.clone()),
        ReleaseSource::Env(var) => return env(&[var.as_str()]),
        ReleaseSource::None => return None,
        ReleaseSource::Git { name } => match git() {
            Some(sha) => return Some(format!("{name}@{sha}")),
            None => env(&RELEASE_ENV),
        },
        ReleaseSource::Auto => match env(&RELEASE_ENV) {
            Some(release) => return Some(release),
            None => git().map(|sha| format!("{}@{sha}", env!("CARGO_PKG_NAME"))),
        },
    };
    let release = release.or_else(|| fallback.map(str::to_owned));
    static WARNED: Once = Once::new();
    WARNED.call_once(|| match &release {
        Some(release) => tracing::warn!(
            %release,
            "no git commit to name the release after; using the fallback release"
        ),
        None => tracing::warn!(
            "no release: git gave no commit and neither LOOKOUT_RELEASE nor SENTRY_RELEASE \
             is set; sessions and release health need one (set Options::release_fallback)"
        ),
    });
    release
}

/// The calling crate's `name@version` (from its `Cargo.toml`), for
/// [`Options::release_fallback`] or [`Options::release`].
///
/// ```
/// let options = lookout_agent::Options::new("ag_1")
///     .release_from_git("momentum-bot")
///     .release_fallback(lookout_agent::crate_release!());
/// # let _ = options;
/// assert_eq!(lookout_agent::crate_release!(), concat!("lookout-agent@", env!("CARGO_PKG_VERSION")));
/// ```
#[macro_export]
macro_rules! crate_release {
    () => {
        concat!(env!("CARGO_PKG_NAME"), "@", env!("CARGO_PKG_VERSION"))
    };
}

/// What [`init`] returns: keep it alive for the life of the agent. Dropping it flushes
/// pending events (up to the shutdown timeout, 2 s) and closes the client.
#[must_use = "dropping the guard flushes and shuts the client down"]
pub struct Guard {
    /// Stops the kill switch's control channel (dropped first).
    _control: Option<crate::control::StopOnDrop>,
    sentry: ClientInitGuard,
    counters: Counters,
    state: StateSlot,
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("enabled", &self.sentry.is_enabled())
            .field("counters", &self.counters.snapshot())
            .finish()
    }
}

impl Guard {
    /// Whether events are sent (a DSN was configured).
    pub fn is_enabled(&self) -> bool {
        self.sentry.is_enabled()
    }

    /// Counters of dropped and escalated events.
    pub fn counters(&self) -> Counters {
        self.counters.clone()
    }

    /// Register (or replace) the trading state provider.
    pub fn set_state_provider(&self, provider: impl StateProvider) {
        self.state.set(Some(Arc::new(provider)));
    }

    /// Remove the trading state provider.
    pub fn clear_state_provider(&self) {
        self.state.set(None);
    }

    /// Send everything queued, waiting at most `timeout`; `true` if all was sent.
    pub fn flush(&self, timeout: std::time::Duration) -> bool {
        self.sentry.flush(Some(timeout))
    }
}

/// Initialise the agent's monitoring: the `sentry` client with the panic integration, the
/// agent's tags and user on the main scope, and (if asked) a default `tracing` subscriber.
///
/// ```no_run
/// let _guard = lookout_agent::init(
///     lookout_agent::Options::new("ag_0123456789ab")
///         .dsn("http://public@127.0.0.1:9000/1")
///         .strategy("mean_reversion")
///         .release("momentum-bot@1.4.2"),
/// );
/// ```
pub fn init(options: Options) -> Guard {
    let client_options = options.client_options();
    let sentry = sentry::init(client_options);
    sentry::configure_scope(|scope| options.apply_to_scope(scope));
    if options.install_subscriber {
        install_default_subscriber();
    }
    // The kill switch's channel started with the client; the guard stops it.
    let control = crate::deferred::shared_of(&sentry::Hub::main())
        .and_then(|shared| shared.control.get().cloned())
        .map(crate::control::StopOnDrop);
    Guard {
        _control: control,
        sentry,
        counters: options.counters.clone(),
        state: options.state.clone(),
    }
}

fn install_default_subscriber() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let env_filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(tracing_layer())
        .with(tracing_subscriber::fmt::layer().with_filter(env_filter))
        .try_init();
}

/// The `tracing` layer to add to the agent's subscriber: `ERROR` events become Sentry events,
/// `WARN` and `INFO` events become breadcrumbs, and `INFO`-or-more spans (`#[instrument]`)
/// become Sentry spans (children of the current order pipeline stage when there is one).
///
/// ```
/// use tracing_subscriber::prelude::*;
/// tracing_subscriber::registry().with(lookout_agent::tracing_layer()).init();
/// ```
pub fn tracing_layer<S>() -> impl Layer<S> + Send + Sync + 'static
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer, SpanLayer};
    use tracing::Level as TLevel;
    SpanLayer::new()
        .with_filter(LevelFilter::INFO)
        .and_then(BreadcrumbLayer::new().with_filter(filter_fn(|meta| {
            meta.is_event() && matches!(*meta.level(), TLevel::WARN | TLevel::INFO)
        })))
        .and_then(ErrorLayer::new().with_filter(filter_fn(|meta| {
            meta.is_event() && *meta.level() == TLevel::ERROR
        })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repository_without_commits_falls_back_to_the_environment_then_the_fallback() {
        let git = ReleaseSource::Git {
            name: "bot".to_owned(),
        };
        let no_git = || None;
        let no_env = |_: &[&str]| None;
        let env = |vars: &[&str]| (vars == RELEASE_ENV.as_slice()).then(|| "bot@env".to_owned());
        let sha = || Some("abc1234".to_owned());
        let fallback = Some("bot@0.1.0");
        let resolve = |source: &ReleaseSource,
                       fallback: Option<&str>,
                       env: &dyn Fn(&[&str]) -> Option<String>,
                       git: &dyn Fn() -> Option<String>| {
            resolve_release(source, fallback, env, git)
        };
        assert_eq!(
            resolve(&git, fallback, &no_env, &sha).as_deref(),
            Some("bot@abc1234")
        );
        assert_eq!(
            resolve(&git, fallback, &env, &no_git).as_deref(),
            Some("bot@env")
        );
        assert_eq!(
            resolve(&git, fallback, &no_env, &no_git).as_deref(),
            Some("bot@0.1.0")
        );
        assert_eq!(resolve(&git, None, &no_env, &no_git), None);
        assert_eq!(
            resolve(&ReleaseSource::Auto, fallback, &no_env, &no_git).as_deref(),
            Some("bot@0.1.0")
        );
    }
}
