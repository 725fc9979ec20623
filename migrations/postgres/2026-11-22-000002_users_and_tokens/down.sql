DROP TABLE server_settings;
DROP TABLE api_token_products;
DROP TABLE api_tokens;
DROP TABLE users;
