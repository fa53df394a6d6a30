use super::format::FailedStep;
use super::*;

fn failure() -> Message {
    Message {
        when: When::Failure,
        plan: "nightly-sync".into(),
        run_id: "0196-abc".into(),
        exit_code: Some(1),
        failed: vec![FailedStep {
            id: "sync-config".into(),
            status: "failed".into(),
            reason: Some("1 of 2 hosts failed".into()),
            hosts: (1..=7).map(|i| format!("0:10.0.0.{i} exit 3")).collect(),
        }],
        duration: Some("1m40s".into()),
        report: Some("/var/log/baton/nightly.html".into()),
        gate: None,
        error: None,
    }
}

#[test]
fn every_format_carries_plan_run_failures_duration_and_report() {
    for format in [Format::Wecom, Format::Feishu, Format::Slack, Format::Json] {
        let text = body(format, &failure(), None, 0).to_string();
        for needle in [
            "nightly-sync",
            "0196-abc",
            "sync-config",
            "0:10.0.0.1 exit 3",
            "and 2 more",
            "1m40s",
            "/var/log/baton/nightly.html",
        ] {
            assert!(text.contains(needle), "{format:?} lacks {needle}: {text}");
        }
    }
    let wecom = body(Format::Wecom, &failure(), None, 0);
    assert_eq!(wecom["msgtype"], "markdown");
    let feishu = body(Format::Feishu, &failure(), None, 0);
    assert_eq!(feishu["msg_type"], "text");
    assert!(feishu.get("sign").is_none());
    let json = body(Format::Json, &failure(), None, 0);
    assert_eq!(json["schema"], "baton.notification");
    assert_eq!(json["event"], "failure");
}

#[test]
fn a_feishu_secret_signs_the_body() {
    // Feishu's documented algorithm: base64(HMAC-SHA256(key = "ts\nsecret", "")).
    let signed = body(
        Format::Feishu,
        &failure(),
        Some("s3cret-key"),
        1_700_000_000,
    );
    assert_eq!(signed["timestamp"], "1700000000");
    let sign = signed["sign"].as_str().unwrap();
    assert_eq!(sign.len(), 44, "{sign}");
    let again = body(
        Format::Feishu,
        &failure(),
        Some("s3cret-key"),
        1_700_000_000,
    );
    assert_eq!(again["sign"], signed["sign"]);
    let other = body(Format::Feishu, &failure(), Some("other-key"), 1_700_000_000);
    assert_ne!(other["sign"], signed["sign"]);
}

#[test]
fn channels_show_no_token_and_give_it_to_the_masker() {
    let channel = Channel {
        name: None,
        format: Format::Wecom,
        url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa".into(),
        secret: None,
        on: vec![When::Failure],
    };
    assert_eq!(channel.label(), "wecom webhook at qyapi.weixin.qq.com");
    assert!(!format!("{channel:?}").contains("693a91f6"));
    assert_eq!(
        channel.secrets(),
        vec!["693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa".to_owned()]
    );
    assert_eq!(due(std::slice::from_ref(&channel), When::Failure).len(), 1);
    assert!(due(&[channel], When::Success).is_empty());
}
