//! `kubectl packit dashboard`: a web page on 127.0.0.1 that shows the
//! trains and acts on them through the user's own kubeconfig, so it shows
//! what the user may read and does what the user may do. Nothing is
//! installed in the cluster. The server (axum) keeps watches of the
//! PackitDeployments and PackitReleases, answers the page's reads from
//! them, tells the page of every change by server-sent events, and turns
//! its buttons into the same request annotations the plugin writes.
//!
//! The page's writes carry a per-session token that only a page served by
//! this process knows, and every request must name this server as its
//! host, so another site open in the browser can neither act nor read
//! through it (cross-site requests, DNS rebinding).

mod view;

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use futures::{Stream, StreamExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast;

use super::cluster::Ctx;
use super::{Exit, Failure, Result};
use crate::api::{PackitDeployment, PackitRelease};

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/app.css");
/// The header the page sends its session token in; a custom header also
/// makes every cross-origin write a preflighted request, which is refused.
const TOKEN_HEADER: &str = "x-packit-token";

struct Dashboard {
    client: Client,
    deployments: Store<PackitDeployment>,
    releases: Store<PackitRelease>,
    changes: broadcast::Sender<()>,
    token: String,
    /// `127.0.0.1:<port>` and `localhost:<port>`.
    hosts: [String; 2],
}

type Shared = Arc<Dashboard>;

/// Serves the dashboard until interrupted. `namespace` limits it to one
/// namespace; `None` shows every namespace the user may list.
pub async fn serve(client: Client, namespace: Option<String>, port: u16) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| Failure::usage(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| Failure::usage(format!("cannot read the listening address: {e}")))?
        .port();
    let (changes, _) = broadcast::channel(16);
    let deployments = watch::<PackitDeployment>(&client, namespace.as_deref(), changes.clone());
    let releases = watch::<PackitRelease>(&client, namespace.as_deref(), changes.clone());
    let state = Arc::new(Dashboard {
        client,
        deployments,
        releases,
        changes,
        token: token()?,
        hosts: [format!("127.0.0.1:{port}"), format!("localhost:{port}")],
    });
    // The first page shows everything there is; a watch RBAC refuses
    // does not hold the dashboard up.
    let ready = futures::future::join(
        state.deployments.wait_until_ready(),
        state.releases.wait_until_ready(),
    );
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), ready).await;
    let where_ =
        namespace.map_or_else(|| "all namespaces".to_owned(), |n| format!("namespace {n}"));
    println!("Dashboard of {where_}: http://127.0.0.1:{port}/ (Ctrl-C to stop)");
    // Not a graceful shutdown: the pages' event streams never end by
    // themselves, and there is nothing to finish.
    tokio::select! {
        served = axum::serve(listener, router(state)) => served
            .map_err(|e| Failure::usage(format!("serving the dashboard: {e}"))),
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript")], SCRIPT) }),
        )
        .route(
            "/app.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css")], STYLE) }),
        )
        .route("/api/trains", get(trains))
        .route("/api/trains/{namespace}/{name}", get(train))
        .route("/api/trains/{namespace}/{name}/actions", post(act))
        .route("/api/events", get(events))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            same_host,
        ))
        .with_state(state)
}

/// A random token for this run of the dashboard.
fn token() -> Result<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes)
        .map_err(|e| Failure::usage(format!("no randomness for the session token: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Watches one kind through the user's client into a store, and tells the
/// pages of every change. A watch the user may not make (RBAC) keeps
/// retrying with backoff; the page then shows nothing of that kind.
fn watch<K>(client: &Client, namespace: Option<&str>, changes: broadcast::Sender<()>) -> Store<K>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (store, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => {
                    let _ = changes.send(());
                }
                Err(e) => tracing::warn!("dashboard watch: {e}"),
            }
        }
    });
    store
}

/// Refuses requests that do not name this server as their host: a page of
/// another site that resolves its own name to 127.0.0.1 cannot read here.
async fn same_host(
    State(d): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !d.hosts.iter().any(|h| h == host) {
        return (StatusCode::FORBIDDEN, "unknown host").into_response();
    }
    next.run(request).await
}

async fn index(State(d): State<Shared>) -> impl IntoResponse {
    let page = INDEX.replace("{{TOKEN}}", &d.token);
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; frame-ancestors 'none'",
            ),
        ],
        Html(page),
    )
}

async fn trains(State(d): State<Shared>) -> impl IntoResponse {
    let pkds: Vec<PackitDeployment> = d
        .deployments
        .state()
        .iter()
        .map(|p| (**p).clone())
        .collect();
    let releases: Vec<PackitRelease> = d.releases.state().iter().map(|r| (**r).clone()).collect();
    Json(view::overview(&pkds, &releases, Utc::now()))
}

async fn train(
    State(d): State<Shared>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let found = d
        .deployments
        .state()
        .into_iter()
        .find(|p| p.name_any() == name && p.namespace().as_deref() == Some(namespace.as_str()));
    let Some(pkd) = found else {
        let error = format!("PackitDeployment {namespace}/{name} not found");
        return (StatusCode::NOT_FOUND, Json(json!({ "error": error }))).into_response();
    };
    let releases: Vec<PackitRelease> = d.releases.state().iter().map(|r| (**r).clone()).collect();
    Json(view::train(&pkd, &releases, Utc::now())).into_response()
}

/// Every change of a watched object, as an event the page reloads on.
async fn events(
    State(d): State<Shared>,
) -> Sse<impl Stream<Item = std::result::Result<Event, Infallible>>> {
    let changes = changes_of(d.changes.subscribe());
    Sse::new(changes.map(|()| Ok(Event::default().event("change").data("{}"))))
        .keep_alive(KeepAlive::default())
}

/// A broadcast receiver as a stream; a receiver that fell behind still
/// gets one change, which is all the page needs to reload.
fn changes_of(rx: broadcast::Receiver<()>) -> impl Stream<Item = ()> {
    futures::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => Some(((), rx)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    })
}

/// A button's request.
#[derive(Deserialize, Debug)]
#[serde(tag = "action", rename_all = "camelCase")]
pub enum Action {
    Release,
    Promote,
    Approve {
        environment: Option<String>,
    },
    Rollback {
        environment: String,
        #[serde(default)]
        to: Option<String>,
        /// RFC 3339; now when absent.
        #[serde(default)]
        at: Option<String>,
    },
    Hold {
        environment: Option<String>,
        #[serde(default)]
        reason: String,
    },
    Unhold {
        environment: Option<String>,
    },
}

async fn act(
    State(d): State<Shared>,
    Path((namespace, name)): Path<(String, String)>,
    headers: HeaderMap,
    Json(action): Json<Action>,
) -> Response {
    let token = headers.get(TOKEN_HEADER).and_then(|t| t.to_str().ok());
    if token != Some(d.token.as_str()) {
        let error = "missing or wrong session token: reload the dashboard";
        return (StatusCode::FORBIDDEN, Json(json!({ "error": error }))).into_response();
    }
    let ctx = Ctx::new(d.client.clone(), namespace);
    match perform(&ctx, &name, action).await {
        Ok(message) => Json(json!({ "message": message })).into_response(),
        Err(f) => {
            let status = match f.exit {
                Exit::Usage => StatusCode::BAD_REQUEST,
                Exit::NotFound => StatusCode::NOT_FOUND,
                _ => StatusCode::BAD_GATEWAY,
            };
            (status, Json(json!({ "error": f.message }))).into_response()
        }
    }
}

/// Carries a button's request out as the plugin's command of that name.
async fn perform(ctx: &Ctx, name: &str, action: Action) -> Result<String> {
    Ok(match action {
        Action::Release => {
            ctx.release(name).await?;
            format!("Requested a release of {name}")
        }
        Action::Promote => {
            ctx.promote(name, false).await?;
            format!("Requested promotion of {name} to production")
        }
        Action::Approve { environment } => {
            let (release, env, _) = ctx.request_approval(name, environment.as_deref()).await?;
            format!("Approved {release} for {env}")
        }
        Action::Rollback {
            environment,
            to,
            at,
        } => {
            ctx.rollback(name, &environment, to.as_deref(), at.as_deref())
                .await?;
            match at {
                Some(at) => format!("Requested a rollback of {environment} at {at}"),
                None => format!("Requested a rollback of {environment}"),
            }
        }
        Action::Hold {
            environment,
            reason,
        } => {
            ctx.hold(name, environment.as_deref(), &reason).await?;
            format!("Held {}", environment.as_deref().unwrap_or(name))
        }
        Action::Unhold { environment } => {
            ctx.unhold(name, environment.as_deref()).await?;
            format!(
                "Lifted the holds of {}",
                environment.as_deref().unwrap_or(name)
            )
        }
    })
}
