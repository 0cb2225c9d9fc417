//! Placeholder until the status CGI lands: answers 501.
fn main() {
    print!("Status: 501 Not Implemented\r\nContent-Type: application/json\r\n\r\n{{\"error\": \"not implemented\"}}\n");
}
