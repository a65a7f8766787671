//! Password guessing is slowed: after a few failures per account and per client address the
//! login answers 429 with `Retry-After` and a growing delay, even to the right password; the
//! right password works again once the delay has passed, and setting a new password (the
//! CLI's `users set-password`) lifts the lock. Driven over HTTP as the login form posts.

mod common;

use common::TestServer;
use reqwest::StatusCode;

const PASSWORD: &str = "correct-horse-battery";

async fn login(client: &reqwest::Client, base: &str, password: &str) -> reqwest::Response {
    client
        .post(format!("{base}/login"))
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(format!("username=admin&password={password}&next=/"))
        .send()
        .await
        .expect("login")
}

fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()[reqwest::header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_slowed_and_a_new_password_lifts_the_lock() {
    let s = TestServer::start_manual_with(|c| c.admin_password = Some(PASSWORD.into())).await;
    let base = s.server.base_url();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Five wrong guesses are answered as usual.
    for n in 0..5 {
        let r = login(&client, &base, &format!("guess-{n}")).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "guess {n}");
        assert!(
            r.headers()[reqwest::header::LOCATION]
                .to_str()
                .unwrap()
                .contains("failed=1")
        );
    }
    // Then the account and the address are locked: even the right password waits.
    let r = login(&client, &base, "guess-5").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&r), 1);
    assert!(r.text().await.unwrap().contains("Too many failed logins"));
    let r = login(&client, &base, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);

    // Once the delay has passed a guess is heard again, and the next lock is longer.
    s.server.clock.advance(1_000);
    let r = login(&client, &base, "guess-6").await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = login(&client, &base, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after(&r), 2, "the delay doubles");

    // The right password after the delay logs in.
    s.server.clock.advance(2_000);
    let r = login(&client, &base, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers().contains_key(reqwest::header::SET_COOKIE));

    // A new lock, lifted by setting the password (as `lookout users set-password` does).
    for n in 0..6 {
        let _ = login(&client, &base, &format!("again-{n}")).await;
    }
    let r = login(&client, &base, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    s.server
        .store
        .users()
        .set_password("admin", PASSWORD, s.server.clock.now_ms())
        .unwrap();
    let r = login(&client, &base, PASSWORD).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers().contains_key(reqwest::header::SET_COOKIE));
}
