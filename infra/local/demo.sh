#!/usr/bin/env bash
# The demo: Tidemark for real on this machine, no cloud account. Installs what is missing, starts
# two MariaDB servers, loads a sample shop (tables, a view, a trigger, a procedure, a function),
# starts `tidemark serve` (loopback only), and through its HTTP API creates a task per policy
# (multi-replica, resync, incremental), prechecks it, starts it (schedule preview), runs a cycle
# now, and prints what was copied and verified. Stops everything it started.
#
#   infra/local/demo.sh [--rows N]        (default 20000 orders)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
rows=20000
while (($#)); do
  case $1 in
    --rows) rows=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
cd "$repo"
export TIDEMARK_STACK_DIR=${TIDEMARK_STACK_DIR:-$repo/.stack}
step() { printf '\n==> %s\n' "$*" >&2; }

step "install what is missing"
"$here/install.sh" --no-deploy-tools

started_stack=0
serve_pid=""
cleanup() {
  [[ -n $serve_pid ]] && kill -TERM "$serve_pid" 2>/dev/null && wait "$serve_pid" 2>/dev/null || true
  [[ $started_stack == 1 ]] && "$here/stack.sh" stop || true
}
trap cleanup EXIT
if ! "$here/stack.sh" status >/dev/null 2>&1; then
  step "start two MariaDB servers and the AWS emulator"
  "$here/stack.sh" start
  started_stack=1
fi
# shellcheck disable=SC1091
source "$TIDEMARK_STACK_DIR/env"

step "build tidemark"
cargo build --quiet -p tidemark
tidemark=$repo/target/debug/tidemark

step "load the sample shop into the source ($rows orders)"
export MYSQL_PWD=$TIDEMARK_DB_PASSWORD
src() { mariadb --no-defaults -h127.0.0.1 -P"$TIDEMARK_SOURCE_PORT" -u"$TIDEMARK_DB_USER" "$@"; }
dst() { mariadb --no-defaults -h127.0.0.1 -P"$TIDEMARK_DEST_PORT" -u"$TIDEMARK_DB_USER" "$@"; }
src <<SQL
DROP DATABASE IF EXISTS demo_shop;
CREATE DATABASE demo_shop CHARACTER SET utf8mb4;
USE demo_shop;
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(80) NOT NULL, city VARCHAR(40),
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  KEY ix_updated (updated_at));
CREATE TABLE orders (id BIGINT PRIMARY KEY, customer_id INT NOT NULL, amount DECIMAL(12,2) NOT NULL,
  note TEXT, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
  KEY ix_customer (customer_id), KEY ix_updated (updated_at),
  CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customers (id));
CREATE TABLE audit (id BIGINT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(200) NOT NULL,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), KEY ix_updated (updated_at));
INSERT INTO customers (id, name, city, updated_at)
  SELECT seq, CONCAT('customer ', seq), ELT(1 + seq % 4, 'Hangzhou', 'Berlin', 'Lisbon', 'Austin'),
         NOW(6) - INTERVAL 1 HOUR FROM seq_1_to_500;
INSERT INTO orders (id, customer_id, amount, note, updated_at)
  SELECT seq, 1 + seq % 500, (seq % 10000) / 100, IF(seq % 7 = 0, NULL, CONCAT('order ', seq, ' \\t "quoted" ✓')),
         NOW(6) - INTERVAL 1 HOUR FROM seq_1_to_$rows;
CREATE VIEW big_orders AS SELECT o.id, c.name, o.amount FROM orders o JOIN customers c ON c.id = o.customer_id
  WHERE o.amount > 90;
CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW
  INSERT INTO audit (what) VALUES (CONCAT('order ', NEW.id, ' placed'));
INSERT INTO orders (id, customer_id, amount, note) VALUES
  ($rows + 1, 1, 42.00, 'placed after the trigger'), ($rows + 2, 2, 17.50, NULL);
CREATE FUNCTION order_total(c INT) RETURNS DECIMAL(14,2) READS SQL DATA
  RETURN (SELECT COALESCE(SUM(amount), 0) FROM orders WHERE customer_id = c);
CREATE PROCEDURE top_customers(IN n INT) READS SQL DATA
  SELECT customer_id, SUM(amount) AS total FROM orders GROUP BY customer_id ORDER BY total DESC LIMIT n;
SQL
dst -e "DROP DATABASE IF EXISTS demo_dw_resync; DROP DATABASE IF EXISTS demo_dw_incremental;"
dst -N -e "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'demo\\_dw\\_replica\\_%'" \
  | while read -r db; do dst -e "DROP DATABASE \`$db\`"; done

step "start tidemark serve (loopback only)"
data_dir=$TIDEMARK_STACK_DIR/demo
rm -rf "$data_dir"; mkdir -p "$data_dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$tidemark" serve --listen "127.0.0.1:$port" --data-dir "$data_dir" --allow-hosts 127.0.0.1/32 \
  >"$data_dir/serve.log" 2>&1 &
serve_pid=$!

step "create, precheck, start and run a task per policy through the API"
python3 "$here/demo.py" "http://127.0.0.1:$port"

step "check the copies on the destination"
src -e "SELECT 'source demo_shop' AS copy, COUNT(*) AS orders, SUM(amount) AS amount FROM demo_shop.orders"
dst -e "SELECT 'demo_dw_resync' AS copy, COUNT(*) AS orders, SUM(amount) AS amount FROM demo_dw_resync.orders
        UNION ALL SELECT 'demo_dw_incremental', COUNT(*), SUM(amount) FROM demo_dw_incremental.orders"
dst -e "SELECT demo_dw_resync.order_total(1) AS order_total_of_customer_1_on_the_copy"
echo "demo finished: serve's log is in $data_dir/serve.log" >&2
