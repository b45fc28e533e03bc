//! The isolated worker (`scriptd __isolate`): reads one job from stdin, locks itself down,
//! runs the script in QuickJS, and reports over stdout as JSON lines. It runs as its own
//! process, so even a bug in the engine reaches nothing but this locked-down process.

use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use rquickjs::function::Func;
use rquickjs::promise::PromiseState;
use rquickjs::{Context, Ctx, Function, Object, Persistent, Promise, Runtime, Value};

use super::protocol::{End, Job, Message};
use super::sandbox;

const PRELUDE: &str = include_str!("prelude.js");
/// A console message longer than this is cut, so one call cannot flood the pipe with a
/// single giant line.
const MAX_MESSAGE: usize = 64 * 1024;
const STACK_BYTES: usize = 512 * 1024;

/// Runs the worker; never returns.
pub fn main() -> ! {
    // Ends with the server whatever kills it, so no run outlives its node.
    let parent = nix::unistd::getppid();
    let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
    if nix::unistd::getppid() != parent {
        std::process::exit(2);
    }
    // What needs no job is done while the worker waits for one, off the run's path: the
    // engine made with its prelude, then every layer of the sandbox but the job's limits. No
    // script code runs before the job has arrived and its limits are set.
    let engine = Engine::new();
    let mut layers = sandbox::lock_down();
    let mut text = String::new();
    if std::io::stdin().read_to_string(&mut text).is_err() {
        std::process::exit(2);
    }
    let Ok(job) = serde_json::from_str::<Job>(&text) else {
        std::process::exit(2);
    };
    sandbox::limit(&mut layers, job.memory_limit_bytes, job.timeout_ms);
    send(&Message::Layers {
        active: layers.active,
        unavailable: layers.unavailable,
    });
    if let Some(what) = job.probe.as_deref().filter(|_| cfg!(debug_assertions)) {
        probe(what);
    }
    let end = match engine {
        Some(engine) => engine.run(&job),
        None => End::OutOfMemory,
    };
    send(&Message::End(end));
    let _ = std::io::stdout().flush();
    std::process::exit(0)
}

fn send(message: &Message) {
    let mut out = std::io::stdout().lock();
    if let Ok(line) = serde_json::to_string(message) {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

fn emit(stream: u8, text: String) {
    let mut text = text;
    if text.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str(" … [cut]");
    }
    for line in text.split('\n') {
        send(&Message::Line {
            s: if stream == 2 { 2 } else { 1 },
            l: line.to_string(),
        });
    }
}

/// Debug builds: attempts one thing the sandbox must refuse, as injected native code would,
/// and reports it if the attempt returns at all (under the seccomp allowlist it kills the
/// process instead).
fn probe(what: &str) {
    use std::os::fd::AsFd;
    emit(2, format!("probe: attempting {what}"));
    let outcome: String = match what {
        "open" => format!("{:?}", std::fs::File::open("/etc/hostname").map(|_| ())),
        "socket" => format!(
            "{:?}",
            std::net::TcpStream::connect_timeout(
                &"127.0.0.1:9".parse().expect("valid address"),
                Duration::from_millis(200),
            )
            .map(|_| ())
        ),
        "rename" => format!("{:?}", std::fs::rename("/tmp/a", "/tmp/b")),
        "symlink" => format!(
            "{:?}",
            std::os::unix::fs::symlink("/etc/passwd", "/tmp/scriptd-probe-link")
        ),
        "ftruncate" => format!("{:?}", nix::unistd::ftruncate(std::io::stdout().as_fd(), 0)),
        "kill" => format!("{:?}", nix::sys::signal::kill(nix::unistd::getppid(), None)),
        "tgkill" => format!(
            "{:?}",
            nix::sys::pthread::pthread_kill(nix::sys::pthread::pthread_self(), None)
        ),
        "process_vm_readv" => {
            let mut buf = [0u8; 8];
            let remote = [nix::sys::uio::RemoteIoVec { base: 4096, len: 8 }];
            format!(
                "{:?}",
                nix::sys::uio::process_vm_readv(
                    nix::unistd::getppid(),
                    &mut [std::io::IoSliceMut::new(&mut buf)],
                    &remote,
                )
            )
        }
        "spawn" => format!("{:?}", std::process::Command::new("/bin/true").status()),
        "panic" => panic!("probe: the worker panics as asked"),
        other => format!("unknown probe {other}"),
    };
    emit(2, format!("probe: {what} returned: {outcome}"));
}

/// A QuickJS runtime and context with the prelude evaluated, waiting for its job.
struct Engine {
    rt: Runtime,
    context: Context,
}

impl Engine {
    fn new() -> Option<Self> {
        let rt = Runtime::new().ok()?;
        rt.set_max_stack_size(STACK_BYTES);
        let context = Context::full(&rt).ok()?;
        context.with(|ctx| prelude(&ctx)).ok()?;
        Some(Self { rt, context })
    }

    /// Runs the job's script to its end, under the job's memory limit and deadline.
    fn run(&self, job: &Job) -> End {
        let rt = &self.rt;
        let timed_out = Rc::new(Cell::new(false));
        rt.set_memory_limit(job.memory_limit_bytes);
        let deadline = Instant::now() + Duration::from_millis(job.timeout_ms);
        let flag = timed_out.clone();
        rt.set_interrupt_handler(Some(Box::new(move || {
            let over = Instant::now() >= deadline;
            if over {
                flag.set(true);
            }
            over
        })));
        let (timed_out, context) = (&timed_out, &self.context);
        let started = context.with(|ctx| -> Result<Persistent<Promise<'static>>, End> {
            setup(&ctx, job).map_err(|e| failure(&ctx, e, timed_out))?;
            let promise = ctx
                .eval_promise(job.script.as_str())
                .map_err(|e| failure(&ctx, e, timed_out))?;
            Ok(Persistent::save(&ctx, promise))
        });
        let promise = match started {
            Ok(p) => p,
            Err(end) => return end,
        };
        // Run every pending job: the script's own async work, to completion or the deadline.
        loop {
            match rt.execute_pending_job() {
                Ok(true) => continue,
                Ok(false) => break,
                Err(_) if timed_out.get() => return End::TimedOut,
                Err(_) => continue,
            }
        }
        context.with(|ctx| {
            let Ok(promise) = promise.restore(&ctx) else {
                return End::Threw {
                    message: "internal error: lost the script's completion".into(),
                };
            };
            // Top-level-await evaluation resolves to `{ value }`; a value that is itself a
            // promise (an `async main()` called last) counts by what it settled to.
            let completion = match settled(&ctx, &promise, timed_out) {
                Ok(v) => unwrap_completion(v),
                Err(end) => return end,
            };
            match completion.as_promise() {
                Some(inner) => match settled(&ctx, inner, timed_out) {
                    Ok(v) => End::Ok {
                        result: to_json(&ctx, v),
                    },
                    Err(end) => end,
                },
                None => End::Ok {
                    result: to_json(&ctx, completion),
                },
            }
        })
    }
}

/// What a promise settled to, once every pending job has run.
fn settled<'js>(
    ctx: &Ctx<'js>,
    promise: &Promise<'js>,
    timed_out: &Rc<Cell<bool>>,
) -> Result<Value<'js>, End> {
    match promise.state() {
        PromiseState::Resolved => match promise.result::<Value>() {
            Some(Ok(value)) => Ok(value),
            Some(Err(e)) => Err(failure(ctx, e, timed_out)),
            None => Ok(Value::new_undefined(ctx.clone())),
        },
        PromiseState::Rejected => match promise.result::<Value>() {
            Some(Err(e)) => Err(failure(ctx, e, timed_out)),
            _ => Err(End::Threw {
                message: "the script's promise was rejected".into(),
            }),
        },
        PromiseState::Pending if timed_out.get() => Err(End::TimedOut),
        PromiseState::Pending => Err(End::Threw {
            message:
                "the script awaited something that can never settle (no timers or I/O exist here)"
                    .into(),
        }),
    }
}

fn unwrap_completion(value: Value<'_>) -> Value<'_> {
    match value.as_object() {
        Some(obj) if obj.contains_key("value").unwrap_or(false) => {
            obj.get("value").unwrap_or(value.clone())
        }
        _ => value,
    }
}

/// `console`, built by the prelude on a native hook it then hides from the script.
fn prelude(ctx: &Ctx<'_>) -> rquickjs::Result<()> {
    ctx.globals().set("__scriptd_emit", Func::from(emit))?;
    ctx.eval::<(), _>(PRELUDE)
}

/// The job's globals besides the ECMAScript builtins and `console`: `input`, `env`.
fn setup<'js>(ctx: &Ctx<'js>, job: &Job) -> rquickjs::Result<()> {
    let globals = ctx.globals();
    let input = match &job.input {
        Some(v) => ctx.json_parse(v.to_string())?,
        None => Value::new_null(ctx.clone()),
    };
    globals.set("input", input)?;
    let env = Object::new(ctx.clone())?;
    for (k, v) in &job.env {
        env.set(k.as_str(), v.as_str())?;
    }
    let object: Object = globals.get("Object")?;
    let freeze: Function = object.get("freeze")?;
    let env: Object = freeze.call((env,))?;
    globals.set("env", env)?;
    Ok(())
}

/// The completion value as JSON; `undefined` (and what JSON cannot hold) is no result.
fn to_json<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> Option<serde_json::Value> {
    if value.is_undefined() {
        return None;
    }
    let text = ctx.json_stringify(value).ok()??;
    serde_json::from_str(&text.to_string().ok()?).ok()
}

/// Turns the pending exception into how the run ended, printing message and stack.
fn failure(ctx: &Ctx<'_>, err: rquickjs::Error, timed_out: &Rc<Cell<bool>>) -> End {
    if timed_out.get() {
        return End::TimedOut;
    }
    let thrown = match err {
        rquickjs::Error::Exception => ctx.catch(),
        other => {
            let message = other.to_string();
            emit(2, format!("Uncaught {message}"));
            return End::Threw { message };
        }
    };
    let (message, stack) = describe(&thrown);
    if message.contains("out of memory") {
        return End::OutOfMemory;
    }
    if message.contains("stack overflow") || message.contains("call stack size") {
        return End::StackOverflow;
    }
    emit(2, format!("Uncaught {message}"));
    if let Some(stack) = stack.filter(|s| !s.trim().is_empty()) {
        emit(2, stack.trim_end().to_string());
    }
    End::Threw { message }
}

fn describe(thrown: &Value<'_>) -> (String, Option<String>) {
    if let Some(obj) = thrown.as_object() {
        let name: Option<String> = obj.get("name").ok();
        let message: Option<String> = obj.get("message").ok();
        if let Some(message) = message {
            let stack: Option<String> = obj.get("stack").ok();
            return (
                format!("{}: {message}", name.unwrap_or_else(|| "Error".into())),
                stack,
            );
        }
    }
    let text = thrown
        .as_string()
        .and_then(|s| s.to_string().ok())
        .or_else(|| thrown.as_int().map(|i| i.to_string()))
        .or_else(|| thrown.as_float().map(|f| f.to_string()))
        .or_else(|| thrown.as_bool().map(|b| b.to_string()))
        .unwrap_or_else(|| format!("{:?}", thrown.type_of()));
    (text, None)
}
