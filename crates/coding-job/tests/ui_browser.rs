//! The web UI in a real browser: Debian's headless Chromium driven through chromedriver
//! (fantoccini), against a real `dev` server on the real Docker engine. The pages must change
//! on their own (no reload) when something happens, logs must follow, and a rollout must be
//! promotable from the deployments page; a read-only login must see no buttons. The screenshots
//! in `docs/` are written here.

mod support;

use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use support::{Dev, IMAGE, Server, docker, free_port, repo_root, wait_for};

/// How long the browser may take to show a change.
const PAGE_DEADLINE: Duration = Duration::from_secs(30);

/// chromedriver on a free port, killed (with its browsers) when dropped.
struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    fn start() -> ChromeDriver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is not installed (Debian: chromium-driver)");
        let driver = ChromeDriver { child, port };
        wait_for("chromedriver to listen", Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        driver
    }

    async fn browser(&self) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900"
                ]
            }),
        );
        ClientBuilder::rustls()
            .expect("rustls for the webdriver client")
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("failed to open a browser session")
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Retries `check` until it gives a value, or fails the test after `timeout`.
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the first element `css` finds, if any.
async fn text_of(browser: &Client, css: &str) -> Option<String> {
    browser
        .find(Locator::Css(css))
        .await
        .ok()?
        .text()
        .await
        .ok()
}

/// An attribute of the first element `css` finds, if any.
async fn attribute(browser: &Client, css: &str, name: &str) -> Option<String> {
    browser
        .find(Locator::Css(css))
        .await
        .ok()?
        .attr(name)
        .await
        .ok()?
}

/// Marks the loaded document: the mark survives only while the page is not reloaded.
async fn mark_document(browser: &Client) {
    browser
        .execute("window.cjMark = 'still the same page';", vec![])
        .await
        .unwrap();
}

async fn still_marked(browser: &Client) -> bool {
    browser
        .execute("return window.cjMark || null;", vec![])
        .await
        .unwrap()
        .as_str()
        == Some("still the same page")
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    let docs = repo_root().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join(format!("ui-{name}.png")), png).unwrap();
}

/// A job of two tasks that each print a line every 200 ms.
fn ticker_yaml() -> String {
    format!(
        "service: clock\njobs:\n  - name: ticker\n    image: {IMAGE}\n    command: [sh, -c, 'n=0; while true; do n=$((n+1)); echo tick $n; echo tock $n >&2; sleep 0.2; done']\n    tasks:\n      - {{ name: a }}\n      - {{ name: b }}\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_overview_changes_live_when_a_container_is_killed_and_logs_follow() {
    let dev = Dev::start();
    dev.push_yaml("clock.yaml", &ticker_yaml());
    dev.ok(&["up", "clock"]);
    let driver = ChromeDriver::start();
    let browser = driver.browser().await;

    browser.goto(&dev.url).await.unwrap();
    let row = "tr[data-task='clock/ticker/a'] .state";
    eventually(
        "the overview to show clock/ticker/a running",
        PAGE_DEADLINE,
        || async { (text_of(&browser, row).await? == "running").then_some(()) },
    )
    .await;
    screenshot(&browser, "overview").await;
    mark_document(&browser).await;

    // The engine restarts a killed task's container at once: what the page must show is the
    // task's new start (its uptime begins again), or the moment it is down.
    let started = "tr[data-task='clock/ticker/a'] time";
    let started_before = attribute(&browser, started, "datetime").await.unwrap();
    let container = dev.status("clock/ticker/a")[0]
        .container_id
        .clone()
        .unwrap();
    docker(&["kill", &container]);
    eventually(
        "the overview to show the kill without a reload",
        PAGE_DEADLINE,
        || async {
            let state = text_of(&browser, row).await?;
            let started_now = attribute(&browser, started, "datetime").await;
            (state != "running" || started_now.is_some_and(|at| at != started_before)).then_some(())
        },
    )
    .await;
    assert!(still_marked(&browser).await, "the page was reloaded");

    // The task page follows its logs: new lines keep arriving.
    let task_url = format!("{}/ui/task/production/clock/ticker/b", dev.url);
    browser.goto(&task_url).await.unwrap();
    let lines = || async {
        browser
            .execute(
                "return document.querySelectorAll('#logs div').length;",
                vec![],
            )
            .await
            .ok()?
            .as_u64()
    };
    let first = eventually("log lines to appear", PAGE_DEADLINE, || async {
        lines().await.filter(|count| *count >= 3)
    })
    .await;
    eventually("more log lines to follow", PAGE_DEADLINE, || async {
        lines().await.filter(|count| *count >= first + 5)
    })
    .await;
    let text = text_of(&browser, "#logs").await.unwrap();
    assert!(text.contains("tick") && text.contains("tock"), "{text}");
    screenshot(&browser, "task").await;

    // Choosing stderr starts over with only what the container wrote there.
    browser
        .execute(
            "const s = document.getElementById('log-stream'); s.value = 'stderr'; \
             s.dispatchEvent(new Event('change'));",
            vec![],
        )
        .await
        .unwrap();
    let only_stderr = eventually("stderr lines alone", PAGE_DEADLINE, || async {
        let text = text_of(&browser, "#logs").await?;
        let lines: Vec<&str> = text.lines().collect();
        (lines.len() >= 3 && lines.iter().all(|line| line.starts_with("tock"))).then_some(text)
    })
    .await;
    assert!(!only_stderr.contains("tick"), "{only_stderr}");
    let download = attribute(&browser, "#log-download", "href").await.unwrap();
    assert!(download.ends_with("&stream=stderr"), "{download}");

    // The terminal runs each line in the container's shell.
    let line = browser.find(Locator::Css("#terminal-line")).await.unwrap();
    line.send_keys("echo from-$((40+2))").await.unwrap();
    browser
        .find(Locator::Css("#terminal-form button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    eventually(
        "the terminal to show the command's output",
        PAGE_DEADLINE,
        || async {
            text_of(&browser, "#terminal-out")
                .await
                .filter(|text| text.contains("from-42"))
        },
    )
    .await;

    // The hosts page shows each container's Docker stats once the agent has read them (every
    // 10 s): readings are not events, so the test opens the page again until they are there.
    eventually(
        "the hosts page to show the tasks' container stats",
        Duration::from_secs(45),
        || async {
            browser.goto(&format!("{}/ui/hosts", dev.url)).await.ok()?;
            let host = text_of(&browser, ".host").await?;
            let cpu = text_of(&browser, ".host tbody tr td:nth-child(5)").await?;
            (host.contains("clock/ticker/b") && cpu.ends_with('%')).then_some(())
        },
    )
    .await;
    screenshot(&browser, "hosts").await;
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn many_open_tabs_share_one_event_stream_change_live_and_follow_logs() {
    let dev = Dev::start();
    dev.push_yaml("clock.yaml", &ticker_yaml());
    dev.ok(&["up", "clock"]);
    let driver = ChromeDriver::start();
    let browser = driver.browser().await;
    let row = "tr[data-task='clock/ticker/a'] time";

    // More tabs of the overview than a browser opens connections to one server: each must
    // still load at once, so no tab holds a connection of its own for its live updates.
    let mut tabs = vec![browser.window().await.unwrap()];
    for _ in 1..8 {
        tabs.push(browser.new_window(true).await.unwrap().handle);
    }
    for tab in &tabs {
        browser.switch_to_window(tab.clone()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), browser.goto(&dev.url))
            .await
            .expect("a tab waited more than 10 s for a connection to load")
            .unwrap();
        mark_document(&browser).await;
    }
    let started_before = attribute(&browser, row, "datetime").await.unwrap();

    // A change reaches every tab, without a reload.
    let container = dev.status("clock/ticker/a")[0]
        .container_id
        .clone()
        .unwrap();
    docker(&["kill", &container]);
    for tab in &tabs {
        browser.switch_to_window(tab.clone()).await.unwrap();
        eventually("every tab to show the kill", PAGE_DEADLINE, || async {
            let state = text_of(&browser, "tr[data-task='clock/ticker/a'] .state").await?;
            let started_now = attribute(&browser, row, "datetime").await;
            (state != "running" || started_now.is_some_and(|at| at != started_before)).then_some(())
        })
        .await;
        assert!(still_marked(&browser).await, "a tab was reloaded");
    }

    // Task pages follow their logs; one out of sight lets its stream go, so eight of them
    // load too, and the one in front follows.
    let task_url = format!("{}/ui/task/production/clock/ticker/b", dev.url);
    for tab in &tabs {
        browser.switch_to_window(tab.clone()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(10), browser.goto(&task_url))
            .await
            .expect("a task page waited more than 10 s for a connection to load")
            .unwrap();
        eventually("the tab's logs to follow", PAGE_DEADLINE, || async {
            text_of(&browser, "#logs")
                .await
                .filter(|text| text.contains("tick"))
        })
        .await;
    }
    browser.close().await.unwrap();
}

/// A service `web` with one job `api` of three httpd tasks behind a manual gate.
fn web_yaml(ports: &[u16], release: u32) -> String {
    let mut yaml = format!(
        "service: web\njobs:\n  - name: api\n    image: {IMAGE}\n    env: {{ RELEASE: \"{release}\" }}\n    check: {{ http: /health, interval: 500ms, timeout: 500ms, retries: 2 }}\n    update: {{ canary: 1, manual_gate: true, healthy_deadline: 10s }}\n    tasks:\n"
    );
    for (index, port) in ports.iter().enumerate() {
        yaml.push_str(&format!(
            "      - {{ name: t{index}, port: {port}, command: [httpd, -f, -p, \"{port}\", -h, /srv/www] }}\n"
        ));
    }
    yaml
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_shows_its_batches_and_is_promoted_from_the_deployments_page() {
    let dev = Dev::start();
    let ports = [free_port(), free_port(), free_port()];
    dev.push_yaml("web.yaml", &web_yaml(&ports, 1));
    dev.ok(&["up", "web"]);
    dev.push_yaml("web.yaml", &web_yaml(&ports, 2));
    let waiting = dev.ok(&["rolling-update", "web"]);
    assert!(waiting.contains("promote"), "{waiting}");

    let driver = ChromeDriver::start();
    let browser = driver.browser().await;
    browser
        .goto(&format!("{}/ui/deployments", dev.url))
        .await
        .unwrap();
    let status = "article.deployment h2 .state";
    let shown = text_of(&browser, status).await.unwrap();
    assert_eq!(shown, "awaiting-promotion");
    let batches = text_of(&browser, "article.deployment ol.batches")
        .await
        .unwrap();
    assert!(
        batches.contains("batch 1 (canary): healthy") && batches.contains("batch 2"),
        "{batches}"
    );
    mark_document(&browser).await;
    browser
        .find(Locator::Css("button[aria-label^='Promote web']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The form answers with the page again (a new document); from there the page follows the
    // deployment live.
    eventually("the form's answer to load", PAGE_DEADLINE, || async {
        (!still_marked(&browser).await && text_of(&browser, "article.deployment").await.is_some())
            .then_some(())
    })
    .await;
    mark_document(&browser).await;
    eventually(
        "the deployment to succeed on the page",
        Duration::from_secs(60),
        || async { (text_of(&browser, status).await? == "succeeded").then_some(()) },
    )
    .await;
    assert!(still_marked(&browser).await, "the page was reloaded");
    assert!(
        dev.status("web").iter().all(|task| task.version == Some(2)),
        "every task runs version 2"
    );
    screenshot(&browser, "deployments").await;

    browser
        .goto(&format!(
            "{}/ui/history/production/web/api?from=1&to=2",
            dev.url
        ))
        .await
        .unwrap();
    let diff = text_of(&browser, "pre.diff").await.unwrap();
    assert!(
        diff.lines()
            .any(|line| line.starts_with('+') && line.contains("RELEASE: \"2\"")),
        "{diff}"
    );
    screenshot(&browser, "history").await;

    // On a phone's width every page reads without scrolling sideways: wide tables scroll
    // within themselves, and the rest wraps. Going from page to page, each loads at once.
    browser.set_window_size(390, 844).await.unwrap();
    for page in [
        "/",
        "/ui/task/production/web/api/t0",
        "/ui/history/production/web/api?from=1&to=2",
        "/ui/deployments",
        "/ui/hosts",
        "/ui/envs",
        "/ui/audit",
    ] {
        // The pages left behind must have closed their streams (events, logs): a browser
        // opens six connections to a server, and held ones leave the next page waiting.
        let url = format!("{}{page}", dev.url);
        tokio::time::timeout(Duration::from_secs(10), browser.goto(&url))
            .await
            .unwrap_or_else(|_| panic!("{page} waited more than 10 s for a connection"))
            .unwrap();
        let widths = browser
            .execute(
                "return [document.documentElement.scrollWidth, window.innerWidth];",
                vec![],
            )
            .await
            .unwrap();
        let (page_width, window_width) = (widths[0].as_u64().unwrap(), widths[1].as_u64().unwrap());
        assert!(
            window_width <= 500 && page_width <= window_width,
            "{page} is {page_width}px wide in a {window_width}px window"
        );
        if page == "/" {
            screenshot(&browser, "phone").await;
        }
    }
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_token_logs_in_sees_no_buttons_and_forms_from_other_sites_are_refused() {
    let mut server = Server::start();
    server.token = Some(server.admin_token());
    let created = server.json(&["token", "create", "viewer", "--role", "read", "--json"]);
    let read = created["secret"].as_str().unwrap().to_owned();
    // No host has joined this server: the service is pushed, its tasks are not placed.
    server.push_yaml("clock.yaml", &ticker_yaml());

    let driver = ChromeDriver::start();
    let browser = driver.browser().await;
    // Without credentials a page sends the browser to the login form, which comes back.
    browser
        .goto(&format!("{}/ui/envs", server.url))
        .await
        .unwrap();
    let login = browser.current_url().await.unwrap();
    assert_eq!(login.path(), "/ui/login", "{login}");
    let wrong = browser.form(Locator::Css("form#login")).await.unwrap();
    wrong.set_by_name("token", "cj_not-a-token").await.unwrap();
    wrong.submit().await.unwrap();
    // The answer to a submit is a new page: wait for it rather than read the old one.
    let refused = eventually("the login form's error", Duration::from_secs(10), || {
        text_of(&browser, "p.error")
    })
    .await;
    assert!(refused.contains("not valid"), "{refused}");
    assert!(!browser.source().await.unwrap().contains("cj_not-a-token"));

    let form = browser.form(Locator::Css("form#login")).await.unwrap();
    form.set_by_name("token", &read).await.unwrap();
    form.submit().await.unwrap();
    eventually(
        "the environments page after login",
        PAGE_DEADLINE,
        || async {
            let url = browser.current_url().await.ok()?;
            (url.path() == "/ui/envs").then_some(())
        },
    )
    .await;
    let header = text_of(&browser, "header.top").await.unwrap();
    assert!(
        header.contains("viewer") && header.contains("read"),
        "{header}"
    );
    let page = browser.source().await.unwrap();
    assert!(!page.contains(&read), "the token must never be shown");
    assert!(
        !page.contains("/ui/actions/"),
        "a read token gets no forms that change anything"
    );
    let cookies = browser.get_all_cookies().await.unwrap();
    let session = cookies.iter().find(|c| c.name() == "cj_token").unwrap();
    assert_eq!(session.http_only(), Some(true));

    browser
        .goto(&format!("{}/ui/audit", server.url))
        .await
        .unwrap();
    let notice = text_of(&browser, ".notice").await.unwrap();
    assert!(notice.contains("for administrators"), "{notice}");

    browser
        .goto(&format!("{}/ui/task/production/clock/ticker/a", server.url))
        .await
        .unwrap();
    assert!(
        browser.find(Locator::Css("#terminal")).await.is_err(),
        "no terminal for a read-only caller"
    );
    browser.close().await.unwrap();

    // A form posted from another page (here: no session, another Origin) changes nothing.
    let deploy = server.json(&["token", "create", "ci", "--role", "deploy", "--json"]);
    let address = server.url.trim_start_matches("http://").to_owned();
    let body = "env=production&target=clock";
    let request = format!(
        "POST /ui/actions/abort HTTP/1.1\r\nHost: {address}\r\nOrigin: http://evil.example\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        deploy["secret"].as_str().unwrap(),
        body.len()
    );
    let answer = raw_http(&address, &request);
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("another site"), "{answer}");
}

/// Sends one raw HTTP/1.1 request and reads the whole answer.
fn raw_http(address: &str, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}
