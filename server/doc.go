// Package server is the HTTP plumbing every handler of sso runs behind:
// structured logging with request IDs, the middleware chain (client
// addresses behind trusted proxies, panic recovery, request IDs, security
// headers, body limits, access log, Prometheus metrics), the health endpoints, the JSON response helpers and a server
// that shuts down gracefully.
//
// The package knows no domain (users, OAuth, audit …): handlers are built
// elsewhere with their dependencies passed in explicitly, and only wrapped
// here. A typical start:
//
//	logger, _ := server.NewLogger(os.Stderr, "info", "json")
//	metrics := server.NewMetrics(prometheus.NewRegistry())
//	mux := http.NewServeMux()
//	mux.Handle("GET /healthz/live", server.LiveHandler())
//	mux.Handle("GET /healthz/ready", server.ReadyHandler(db.Ping))
//	mux.Handle("GET /metrics", metrics.Handler())
//	h := server.Wrap(mux, server.Options{Logger: logger, Metrics: metrics})
//	srv := server.NewHTTPServer(h, server.Timeouts{}, logger)
//	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
//	defer stop()
//	err := server.Run(ctx, srv, ln, 30*time.Second, logger)
package server
