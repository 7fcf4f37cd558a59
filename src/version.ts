/** The gateway's version; kept equal to package.json's by a unit test. */
export const Version = "0.1.0";
