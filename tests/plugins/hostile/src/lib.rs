//! A deliberately badly behaved plugin for the containment tests. What it does in `on_post`
//! is chosen by the post's subject; any other subject gets a normal answer, which is how
//! the tests show that the next call after a failure works.

use roost_plugin_sdk::{Edit, Header, HookResult, Message, Plugin, PostResult};

struct Hostile;

static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Plugin for Hostile {
    fn on_post(message: Message) -> HookResult<PostResult> {
        let subject = message.subject().to_string();
        let mut words = subject.split_whitespace();
        match words.next().unwrap_or("") {
            "loop" => spin(),
            "alloc" => hog(),
            "panic" => panic!("hostile plugin panicked on purpose"),
            "trap" => trap(),
            "stack" => Ok(PostResult::hold(format!("depth {}", recurse(1)))),
            "error" => Err("refusing on purpose".into()),
            // Plain verdicts, for the pipeline tests.
            "reject" => Ok(PostResult::reject(
                550,
                "5.7.1",
                "posts about that are not welcome",
            )),
            "hold" => Ok(PostResult::hold("held on purpose")),
            "discard" => Ok(PostResult::discard("dropped on purpose")),
            "bad-code" => Ok(PostResult::reject(250, "2.0.0", "this is not a rejection")),
            "bad-header" => Ok(PostResult::next().edit(Edit::AddHeader(Header::new(
                "X-Inject",
                "x\r\nBcc: victim@example.org",
            )))),
            // How many calls this instance has served: shows when the host reuses one.
            "count" => Ok(PostResult::hold(format!(
                "calls={}",
                CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
            ))),
            "escape" => Ok(PostResult::hold(escape(
                words.next().unwrap_or("127.0.0.1:9"),
            ))),
            _ => Ok(PostResult::next().edit(Edit::AddHeader(Header::new("X-Hostile", "survived")))),
        }
    }
}

/// An explicit `unreachable` instruction (abort on native builds, which only run unit tests).
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

fn spin() -> ! {
    let mut n = 0u64;
    loop {
        n = core::hint::black_box(n.wrapping_add(1));
    }
}

fn hog() -> ! {
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        held.push(vec![0xA5; 1 << 20]);
        core::hint::black_box(&held);
    }
}

#[allow(unconditional_recursion)] // on purpose: it must overflow the stack
fn recurse(depth: u64) -> u64 {
    let pad = core::hint::black_box([depth; 64]);
    recurse(pad[0] + 1) + pad[63]
}

/// Try every way out of the sandbox and report what happened to each.
fn escape(addr: &str) -> String {
    let fs = match std::fs::read("/etc/passwd") {
        Ok(b) => format!("read {} bytes", b.len()),
        Err(_) => "denied".into(),
    };
    let fs_write = match std::fs::write("/tmp/roost-hostile-was-here", b"x") {
        Ok(()) => "wrote".into(),
        Err(_) => "denied".to_string(),
    };
    let env = match std::env::var("HOME") {
        Ok(v) => format!("HOME={v}"),
        Err(_) => "denied".into(),
    };
    let net = match std::net::TcpStream::connect(addr) {
        Ok(_) => "connected".into(),
        Err(_) => "denied".to_string(),
    };
    format!("fs-read={fs} fs-write={fs_write} env={env} net={net}")
}

roost_plugin_sdk::export_plugin!(Hostile, hooks = [on_post]);
