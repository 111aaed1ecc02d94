//! The run-cycle function: EventBridge Scheduler's target and the stalled-run sweep. Wiring only;
//! the handler lives in tidemark-lambda.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tidemark_lambda::init_logs();
    let service = tidemark_lambda::task_service_from_env().await?;
    tidemark_lambda::cycle::serve(service).await
}
