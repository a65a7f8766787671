//! The agent's state on its client: finishing order pipelines off the decision loop.
//!
//! Building a transaction (its stage spans and their data, the scope's tags, user and
//! contexts, the envelope) costs several times what recording the stages does. So a sampled
//! [`OrderPipeline`](crate::OrderPipeline) records each synchronous stage as a
//! [`StageRecord`] (timestamps, status and data, nothing else) and, when it finishes, hands
//! the whole [`FinishedPipeline`] to the transport's worker thread, which builds the
//! transaction there ([`complete`]), scrubs it and sends it.
//!
//! The pipeline's `sentry` transaction is started on a private client of the agent (the same
//! options, so the same sampling, release and environment; no integrations; a transport that
//! hands the envelope back to the thread that finished it). It is the hub's current span while
//! the pipeline runs, so spans opened under it (`#[instrument]`, asynchronous stages) are
//! kept in it, and finishing it on the worker gives back the envelope instead of sending it.
//!
//! When the client's transport is not the agent's (a test swapped it), the pipeline is
//! completed on the finishing thread and sent through the hub's client, the same way.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use sentry::protocol::{EnvelopeItem, Value};
use sentry::{
    Client, ClientOptions, Envelope, Hub, Integration, Scope, Transport, TransportFactory,
};

use crate::order::{FinishedPipeline, PipelineQueue, StageRecord};

/// The agent's state shared by its client (as an integration) and its transport.
#[derive(Default)]
pub(crate) struct Shared {
    /// The agent id given to [`crate::Options::new`].
    pub(crate) agent_id: String,
    private: OnceLock<Arc<Hub>>,
    queue: Mutex<Option<Weak<dyn PipelineQueue>>>,
    /// The kill switch's control channel to start when the client is built, then running.
    pub(crate) control_plan: Mutex<Option<crate::control::Plan>>,
    pub(crate) control: OnceLock<crate::control::ControlHandle>,
    /// The agent's profiling settings (the `profiling` feature).
    #[cfg(feature = "profiling")]
    pub(crate) profiling: Option<crate::profiling::Profiling>,
}

impl Shared {
    /// The shared state of the agent with this id.
    pub(crate) fn new(agent_id: String) -> Self {
        Self {
            agent_id,
            private: OnceLock::new(),
            queue: Mutex::new(None),
            control_plan: Mutex::new(None),
            control: OnceLock::new(),
            #[cfg(feature = "profiling")]
            profiling: None,
        }
    }

    /// Start the profile of a sampled pipeline starting now, if the agent profiles this one
    /// ([`crate::profiling`]).
    #[cfg(feature = "profiling")]
    pub(crate) fn start_profile(&self) -> Option<crate::profiling::ActiveProfile> {
        self.profiling.as_ref()?.start()
    }

    /// The transport of this agent's client registers its queue here.
    pub(crate) fn set_queue(&self, queue: &Arc<dyn PipelineQueue>) {
        if let Ok(mut slot) = self.queue.lock() {
            *slot = Some(Arc::downgrade(queue));
        }
    }

    fn queue(&self) -> Option<Arc<dyn PipelineQueue>> {
        self.queue
            .lock()
            .ok()
            .and_then(|slot| slot.as_ref().and_then(Weak::upgrade))
    }

    /// The hub of the private client pipelines start their transactions on, built the first
    /// time from the agent client's options.
    pub(crate) fn private_hub(&self, client: &Client) -> Arc<Hub> {
        let hub = self.private.get_or_init(|| {
            let mut options: ClientOptions = client.options().clone();
            options.transport = Some(Arc::new(HandBackFactory));
            options.before_send = None;
            options.before_breadcrumb = None;
            options.integrations = Vec::new();
            options.default_integrations = false;
            options.auto_session_tracking = false;
            let client = Arc::new(Client::from(options));
            Arc::new(Hub::new(Some(client), Arc::new(Scope::default())))
        });
        Arc::clone(hub)
    }
}

/// Carries [`Shared`] on the agent's client, where a pipeline finds it from its hub.
pub(crate) struct AgentIntegration {
    pub(crate) shared: Arc<Shared>,
}

impl Integration for AgentIntegration {
    fn name(&self) -> &'static str {
        "lookout-agent"
    }

    /// The client is being built: start the agent's control channel (the kill switch), once.
    fn setup(&self, _options: &mut ClientOptions) {
        let plan = self
            .shared
            .control_plan
            .lock()
            .ok()
            .and_then(|mut p| p.take());
        if let Some(handle) = plan.and_then(crate::control::start) {
            let _ = self.shared.control.set(handle);
        }
    }
}

/// Find the agent's shared state from a hub (none when the hub's client is not an agent's).
pub(crate) fn shared_of(hub: &Hub) -> Option<Arc<Shared>> {
    hub.with_integration(|integration: &AgentIntegration| Some(Arc::clone(&integration.shared)))
}

thread_local! {
    static HANDED_BACK: RefCell<Option<Envelope>> = const { RefCell::new(None) };
}

/// The private client's transport: keeps the envelope for the thread that produced it.
struct HandBack;

impl Transport for HandBack {
    fn send_envelope(&self, envelope: Envelope) {
        HANDED_BACK.with(|slot| *slot.borrow_mut() = Some(envelope));
    }
}

struct HandBackFactory;

impl TransportFactory for HandBackFactory {
    fn create_transport(&self, _options: &ClientOptions) -> Arc<dyn Transport> {
        Arc::new(HandBack)
    }
}

/// Add the recorded stages to a transaction as child spans.
pub(crate) fn attach_stages(
    transaction: &sentry::Transaction,
    stages: Vec<StageRecord>,
    data: Vec<(Cow<'static, str>, Value)>,
) {
    let mut data = data.into_iter();
    let mut taken = 0;
    for record in stages {
        let span = transaction.start_child_with_details(
            record.stage.op(),
            &record.stage.description(),
            record.span_id,
            record.start,
        );
        let count = record.data_end.saturating_sub(taken);
        taken += count;
        for (key, value) in data.by_ref().take(count) {
            span.set_data(&key, value);
        }
        span.set_status(record.status);
        span.finish_with_timestamp(record.end);
    }
}

/// Build the pipeline's transaction envelope (on whichever thread calls this).
pub(crate) fn complete(pipeline: FinishedPipeline) -> Option<Envelope> {
    let FinishedPipeline {
        transaction,
        stages,
        data,
        tags,
        scope,
        end,
        private,
        #[cfg(feature = "profiling")]
        profile,
    } = pipeline;
    tags.apply(&transaction);
    attach_stages(&transaction, stages, data);
    let hub = Arc::new(Hub::new(private.client(), Arc::new(scope)));
    HANDED_BACK.with(|slot| slot.borrow_mut().take());
    Hub::run(hub, || transaction.finish_with_timestamp(end));
    let envelope = HANDED_BACK
        .with(|slot| slot.borrow_mut().take())
        .filter(|envelope| {
            envelope
                .items()
                .any(|item| matches!(item, EnvelopeItem::Transaction(_)))
        });
    #[cfg(feature = "profiling")]
    let envelope = crate::profiling::attach(envelope, profile);
    envelope
}

/// Send a finished pipeline: onto the agent transport's queue (built on its worker), or, when
/// the client's transport is not the agent's, built here and sent through `hub`'s client.
pub(crate) fn dispatch(shared: &Shared, hub: &Hub, pipeline: FinishedPipeline) {
    if let Some(queue) = shared.queue() {
        queue.push_pipeline(pipeline);
        return;
    }
    if let (Some(envelope), Some(client)) = (complete(pipeline), hub.client()) {
        client.send_envelope(crate::scrub::scrub_envelope(envelope));
    }
}
