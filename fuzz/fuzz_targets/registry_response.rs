//! Whole registry answers (status line, headers, body) fed to the client stack as a
//! registry on 127.0.0.1 would send them, for every request of an `inspect`: the
//! token dance, the manifest, the config and the layer. Never a panic, never a hang
//! (every request is answered or closed at once), never more than the bounded reads.
#![no_main]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::OnceLock;

use ballast::inspect::{self, InspectOptions, NoProgress};
use ballast::reference::ImageRef;
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let host = listener.local_addr().expect("addr").to_string();
    let answer = data.to_vec();
    let server = std::thread::spawn(move || {
        listener.set_nonblocking(false).ok();
        // At most a handful of requests per run: answer each with the fuzz bytes.
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { break };
            stream
                .set_read_timeout(Some(std::time::Duration::from_millis(200)))
                .ok();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(&answer);
            // Closing ends whatever the bytes left open.
        }
    });
    let Ok(image) = ImageRef::parse(&format!("{host}/fuzz/app:1")) else {
        return;
    };
    let mut options = InspectOptions::default();
    options.registry.connect_timeout = Some(std::time::Duration::from_millis(500));
    options.registry.read_timeout = Some(std::time::Duration::from_millis(500));
    options.registry.retry.attempts = 1;
    let _ = runtime().block_on(inspect::inspect(
        &image,
        &options,
        std::sync::Arc::new(NoProgress),
    ));
    // Unblock the accept loop for the requests that were never made.
    for _ in 0..8 {
        if std::net::TcpStream::connect(&host).is_err() {
            break;
        }
    }
    let _ = server.join();
});
