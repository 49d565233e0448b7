mod http_tests;
mod restarts_tests;
mod rollout_tests;
