//! The precheck function: POST /connections/test and POST /tasks/{id}/precheck (HTTP API), and
//! the precheck queue's messages (SQS). Wiring only; the handler lives in tidemark-lambda.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tidemark_lambda::init_logs();
    let service = tidemark_lambda::task_service_from_env().await?;
    tidemark_lambda::precheck::serve(service).await
}
