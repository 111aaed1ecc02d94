//! The AWS SDK pointed at the emulator (moto's server on loopback).
//!
//! Credentials, region and endpoint are all given, so the SDK never looks for instance metadata
//! or any other credential source off this machine.

use aws_config::{BehaviorVersion, Region, SdkConfig};

use super::stack::StackEnv;

/// The emulator's endpoint URL, e.g. `http://127.0.0.1:24566`.
pub fn emulator_endpoint() -> String {
    StackEnv::get().var("AWS_ENDPOINT_URL").to_owned()
}

/// An SDK config for the emulator.
pub async fn sdk_config() -> SdkConfig {
    let endpoint = emulator_endpoint();
    assert!(
        endpoint.starts_with("http://127.") || endpoint.starts_with("http://[::1]"),
        "the emulator endpoint {endpoint} is not on loopback"
    );
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        // Static credentials: the SDK must never go looking for instance metadata.
        .test_credentials()
        .load()
        .await
}
