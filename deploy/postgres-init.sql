-- One database per regional node (run once by the postgres image on an empty data directory).
CREATE DATABASE shanghai;
CREATE DATABASE jiangsu;
CREATE DATABASE zhejiang;
CREATE DATABASE anhui;
